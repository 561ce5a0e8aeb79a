import type { NatsConnection } from '@nats-io/nats-core';
import { Objm } from '@nats-io/obj';

/** Reads invoice PDFs by object name. `undefined` while there is none. */
export interface InvoicePdfs {
  pdf(objectName: string): Promise<Uint8Array | undefined>;
}

/** {@link InvoicePdfs} in the JetStream object store `bucket` (names from the contracts' topology). */
export class ObjectStoreInvoices implements InvoicePdfs {
  readonly #objm: Objm;
  constructor(
    nc: NatsConnection,
    private readonly bucket: string,
  ) {
    this.#objm = new Objm(nc);
  }

  async pdf(objectName: string): Promise<Uint8Array | undefined> {
    let store;
    try {
      store = await this.#objm.open(this.bucket);
    } catch {
      return undefined; // no bucket yet: no invoice yet
    }
    return (await store.getBlob(objectName)) ?? undefined;
  }
}
