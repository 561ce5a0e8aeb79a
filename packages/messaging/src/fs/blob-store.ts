import { randomUUID } from 'node:crypto';
import { mkdir, open, readFile, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { BlobStore, BlobStores } from '../ports/blob-store.ts';
import { StoreNotFoundError, StoreUnavailableError } from '../ports/errors.ts';
import { checkBucketName, checkItemName } from '../ports/names.ts';

const errorCode = (error: unknown) => (error as NodeJS.ErrnoException | undefined)?.code;

/**
 * {@link BlobStores} in a directory, for processes of one machine that share blobs without a broker:
 * a bucket is a sub-directory (made by `create`, with the directory itself if needed), an object a file
 * in it (a `/` in its name stored as `%`). A put writes a temporary file (`.tmp-…`, never an object
 * name), syncs it and renames it over the object, then syncs the directory: readers, also in other
 * processes, see the old or the new object whole, and a finished put survives a power cut. Temporary
 * files of a process killed mid-put are left behind. A missing bucket directory is "not found"; every
 * other file-system failure (`ENOTDIR`, `EACCES`, `EIO`…) is an outage.
 */
export class FileBlobStores implements BlobStores {
  constructor(readonly directory: string) {}

  async open(bucket: string): Promise<BlobStore> {
    checkBucketName(bucket);
    const directory = join(this.directory, bucket);
    try {
      await stat(directory);
    } catch (error) {
      if (errorCode(error) === 'ENOENT') throw new StoreNotFoundError(bucket, undefined, { cause: error });
      throw new StoreUnavailableError(bucket, undefined, { cause: error });
    }
    return new FileBlobStore(bucket, directory);
  }

  async create(bucket: string): Promise<BlobStore> {
    checkBucketName(bucket);
    const directory = join(this.directory, bucket);
    try {
      await mkdir(directory, { recursive: true });
    } catch (error) {
      throw new StoreUnavailableError(bucket, undefined, { cause: error });
    }
    return new FileBlobStore(bucket, directory);
  }
}

class FileBlobStore implements BlobStore {
  constructor(
    readonly bucket: string,
    private readonly directory: string,
  ) {}

  async get(name: string): Promise<Uint8Array> {
    const path = this.#path(name);
    try {
      return await readFile(path);
    } catch (error) {
      await this.#missing(name, error);
      throw new StoreNotFoundError(this.bucket, name, { cause: error });
    }
  }

  async stat(name: string): Promise<{ size: number } | undefined> {
    const path = this.#path(name);
    try {
      return { size: (await stat(path)).size };
    } catch (error) {
      await this.#missing(name, error);
      return undefined;
    }
  }

  async put(name: string, bytes: Uint8Array): Promise<{ size: number }> {
    const path = this.#path(name);
    const temporary = join(this.directory, `.tmp-${randomUUID()}`);
    try {
      await this.#synced(temporary, 'wx', (file) => file.writeFile(bytes));
      await rename(temporary, path);
      await this.#synced(this.directory, 'r');
    } catch (error) {
      await unlink(temporary).catch(() => undefined);
      await this.#missing(name, error);
      throw new StoreUnavailableError(this.bucket, name, { cause: error });
    }
    return { size: bytes.length };
  }

  async delete(name: string): Promise<void> {
    const path = this.#path(name);
    try {
      await unlink(path);
    } catch (error) {
      await this.#missing(name, error);
    }
  }

  /** The object's file; rejects a bad name first. */
  #path(name: string): string {
    checkItemName(this.bucket, name);
    return join(this.directory, name.replaceAll('/', '%'));
  }

  async #synced(path: string, flags: string, write?: (file: FileHandle) => Promise<void>): Promise<void> {
    const file = await open(path, flags);
    try {
      await write?.(file);
      await file.sync();
    } finally {
      await file.close();
    }
  }

  /**
   * Returns when `error` says the object is not there in a bucket that is; rejects with
   * `StoreNotFoundError` when the bucket directory is gone, `StoreUnavailableError` otherwise.
   */
  async #missing(name: string, error: unknown): Promise<void> {
    if (errorCode(error) !== 'ENOENT') throw new StoreUnavailableError(this.bucket, name, { cause: error });
    try {
      await stat(this.directory);
    } catch (cause) {
      if (errorCode(cause) === 'ENOENT') throw new StoreNotFoundError(this.bucket, undefined, { cause });
      throw new StoreUnavailableError(this.bucket, name, { cause });
    }
  }
}
