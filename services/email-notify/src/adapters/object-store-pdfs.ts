import { StoreNotFoundError, type BlobStore, type BlobStores } from '@orderflow/messaging';

/**
 * Reads an invoice PDF by the location `invoice.created` gives. `undefined` when it is not there; an
 * outage of the store rejects with `StoreUnavailableError` (retried in place), never `undefined`.
 */
export interface InvoicePdfs {
  fetch(location: { bucket: string; name: string }): Promise<Uint8Array | undefined>;
}

/**
 * {@link InvoicePdfs} in the blob buckets the location names. A bucket is opened once and kept (opening
 * asks the server for the JetStream account and the bucket's stream: two API calls per mail
 * otherwise); a bucket found missing is forgotten, so the next fetch opens it again.
 */
export class ObjectStorePdfs implements InvoicePdfs {
  readonly #buckets = new Map<string, Promise<BlobStore>>();

  constructor(private readonly blobs: BlobStores) {}

  #open(bucket: string): Promise<BlobStore> {
    let opened = this.#buckets.get(bucket);
    if (!opened) {
      opened = this.blobs.open(bucket);
      this.#buckets.set(bucket, opened);
      // A failed open is not kept: the next fetch tries again.
      opened.catch(() => {
        if (this.#buckets.get(bucket) === opened) this.#buckets.delete(bucket);
      });
    }
    return opened;
  }

  async fetch(location: { bucket: string; name: string }): Promise<Uint8Array | undefined> {
    try {
      return await (await this.#open(location.bucket)).get(location.name);
    } catch (error) {
      if (error instanceof StoreNotFoundError) {
        // The bucket itself may be gone (deleted and made again): open it afresh next time.
        if (error.key === undefined) this.#buckets.delete(location.bucket);
        return undefined; // no such bucket or object (yet)
      }
      throw error;
    }
  }
}
