import { StoreNotFoundError, type BlobStores } from '@orderflow/messaging';

/**
 * Reads invoice PDFs by object name. `undefined` while there is none; an outage of the store rejects
 * with `StoreUnavailableError` (a 503 at the edge), never `undefined`.
 */
export interface InvoicePdfs {
  pdf(objectName: string): Promise<Uint8Array | undefined>;
}

/** {@link InvoicePdfs} in the blob bucket `bucket` (names from the contracts' topology). */
export class ObjectStoreInvoices implements InvoicePdfs {
  constructor(
    private readonly blobs: BlobStores,
    private readonly bucket: string,
  ) {}

  async pdf(objectName: string): Promise<Uint8Array | undefined> {
    try {
      // No bucket yet (no invoice yet) and no object are both "none"; anything else rejects.
      return await (await this.blobs.open(this.bucket)).get(objectName);
    } catch (error) {
      if (error instanceof StoreNotFoundError) return undefined;
      throw error;
    }
  }
}
