import type { NatsConnection } from '@nats-io/nats-core';
import { Objm } from '@nats-io/obj';

/** Finds the invoice PDF of an order. `undefined` while there is none. */
export interface InvoicePdfs {
  pdf(orderId: string): Promise<Uint8Array | undefined>;
}

/**
 * {@link InvoicePdfs} in the JetStream object store `bucket`. The contracts name the bucket but not the
 * object, so the usual names are tried first (`<orderId>.pdf`, `<orderId>`), then an entry whose name
 * contains the order id.
 */
export class ObjectStoreInvoices implements InvoicePdfs {
  readonly #objm: Objm;
  constructor(
    nc: NatsConnection,
    private readonly bucket: string,
  ) {
    this.#objm = new Objm(nc);
  }

  async pdf(orderId: string): Promise<Uint8Array | undefined> {
    let store;
    try {
      store = await this.#objm.open(this.bucket);
    } catch {
      return undefined; // no bucket yet: no invoice yet
    }
    for (const name of [`${orderId}.pdf`, orderId]) {
      const blob = await store.getBlob(name);
      if (blob) return blob;
    }
    const entry = (await store.list()).find((e) => e.name.includes(orderId) && !e.deleted);
    return entry ? ((await store.getBlob(entry.name)) ?? undefined) : undefined;
  }
}
