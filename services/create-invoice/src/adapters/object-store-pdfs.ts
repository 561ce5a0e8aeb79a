import type { NatsConnection } from '@nats-io/nats-core';
import { Objm, type ObjectStore } from '@nats-io/obj';

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

/** {@link PdfArchive} in a JetStream object store bucket. */
export class ObjectStorePdfArchive implements PdfArchive {
  private constructor(
    private readonly objects: ObjectStore,
    readonly bucket: string,
  ) {}

  /** Creates the bucket if needed (idempotent) and binds to it. */
  static async open(nc: NatsConnection, bucket: string, options: { replicas?: number } = {}) {
    const objects = await new Objm(nc).create(bucket, {
      replicas: options.replicas ?? 1,
      description: 'create-invoice: invoice PDFs',
    });
    return new ObjectStorePdfArchive(objects, bucket);
  }

  async store(name: string, pdf: () => Promise<Uint8Array>): Promise<PdfLocation> {
    const existing = await this.objects.info(name);
    if (existing && !existing.deleted) return { bucket: this.bucket, name, size: existing.size };
    const bytes = await pdf();
    const info = await this.objects.putBlob({ name, description: 'application/pdf' }, bytes);
    return { bucket: this.bucket, name, size: info.size };
  }

  /** The stored PDF, or `undefined`. */
  async fetch(name: string): Promise<Uint8Array | undefined> {
    return (await this.objects.getBlob(name)) ?? undefined;
  }
}
