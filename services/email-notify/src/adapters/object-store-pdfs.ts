import { StoreNotFoundError, type BlobStores } from '@orderflow/messaging';

/**
 * Reads an invoice PDF by the location `invoice.created` gives. `undefined` when it is not there; an
 * outage of the store rejects with `StoreUnavailableError` (retried in place), never `undefined`.
 */
export interface InvoicePdfs {
  fetch(location: { bucket: string; name: string }): Promise<Uint8Array | undefined>;
}

/** {@link InvoicePdfs} in the blob buckets the location names. */
export class ObjectStorePdfs implements InvoicePdfs {
  constructor(private readonly blobs: BlobStores) {}

  async fetch(location: { bucket: string; name: string }): Promise<Uint8Array | undefined> {
    try {
      return await (await this.blobs.open(location.bucket)).get(location.name);
    } catch (error) {
      if (error instanceof StoreNotFoundError) return undefined; // no such bucket or object (yet)
      throw error;
    }
  }
}
