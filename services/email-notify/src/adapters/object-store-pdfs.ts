import type { NatsConnection } from '@nats-io/nats-core';
import { Objm } from '@nats-io/obj';

/** Reads an invoice PDF by the location `invoice.created` gives. `undefined` when it is not there. */
export interface InvoicePdfs {
  fetch(location: { bucket: string; name: string }): Promise<Uint8Array | undefined>;
}

/** {@link InvoicePdfs} in the JetStream object store. */
export class ObjectStorePdfs implements InvoicePdfs {
  readonly #objm: Objm;
  constructor(nc: NatsConnection) {
    this.#objm = new Objm(nc);
  }

  async fetch(location: { bucket: string; name: string }): Promise<Uint8Array | undefined> {
    let store;
    try {
      store = await this.#objm.open(location.bucket);
    } catch {
      return undefined; // no such bucket (yet)
    }
    return (await store.getBlob(location.name)) ?? undefined;
  }
}
