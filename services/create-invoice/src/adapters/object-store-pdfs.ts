import { StoreNotFoundError, type BlobStore, type BlobStores } from '@orderflow/messaging';

/** Where an invoice PDF is stored, as `invoice.created` tells it. */
export interface PdfLocation {
  bucket: string;
  name: string;
  size: number;
}

/** Stores invoice PDFs. */
export interface PdfArchive {
  /** Stores `pdf` under `name` unless an object of that name is there already; returns where it is. */
  store(name: string, pdf: () => Promise<Uint8Array>): Promise<PdfLocation>;
}

/** {@link PdfArchive} in a blob bucket. Store outages reject with `StoreUnavailableError` (retried in place). */
export class ObjectStorePdfArchive implements PdfArchive {
  private constructor(private readonly objects: BlobStore) {}

  get bucket(): string {
    return this.objects.bucket;
  }

  /** Creates the bucket if needed (idempotent) and binds to it. */
  static async open(blobs: BlobStores, bucket: string, options: { replicas?: number } = {}) {
    const objects = await blobs.create(bucket, {
      replicas: options.replicas ?? 1,
      description: 'create-invoice: invoice PDFs',
    });
    return new ObjectStorePdfArchive(objects);
  }

  async store(name: string, pdf: () => Promise<Uint8Array>): Promise<PdfLocation> {
    const existing = await this.objects.stat(name);
    if (existing) return { bucket: this.bucket, name, size: existing.size };
    const bytes = await pdf();
    const info = await this.objects.put(name, bytes, { description: 'application/pdf' });
    return { bucket: this.bucket, name, size: info.size };
  }

  /** The stored PDF, or `undefined` when there is none (an outage rejects). */
  async fetch(name: string): Promise<Uint8Array | undefined> {
    try {
      return await this.objects.get(name);
    } catch (error) {
      if (error instanceof StoreNotFoundError) return undefined;
      throw error;
    }
  }
}
