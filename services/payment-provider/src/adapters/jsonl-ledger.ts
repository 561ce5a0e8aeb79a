import { mkdir, open, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { StoredResponse } from '../domain/idempotency.ts';
import type { ChargeEntry, LedgerEntry } from '../domain/ledger.ts';

/** One line of the ledger file: a ledger entry and/or the response stored under its idempotency key. */
interface Line {
  entry?: LedgerEntry;
  idempotency?: StoredResponse;
}

/** Where the PSP keeps its ledger and idempotency keys. */
export interface LedgerStore {
  readonly entries: readonly LedgerEntry[];
  charge(id: string): ChargeEntry | undefined;
  refundedAmount(chargeId: string): number;
  stored(idempotencyKey: string): StoredResponse | undefined;
  /** Records an entry and the response to replay for its key, durably (fsync), as one line. */
  record(line: Line): Promise<void>;
  close(): Promise<void>;
}

/**
 * The ledger as an append-only JSON-lines file (`ledger.jsonl`) in the data directory, loaded into memory
 * at start. One line per write, fsync'd before the response is sent; a torn last line (crash while
 * writing) is ignored on load. One process owns the file.
 */
export class JsonlLedgerStore implements LedgerStore {
  readonly entries: LedgerEntry[] = [];
  readonly #charges = new Map<string, ChargeEntry>();
  readonly #refunded = new Map<string, number>();
  readonly #keys = new Map<string, StoredResponse>();
  #tail: Promise<void> = Promise.resolve();

  private constructor(private readonly file: FileHandle) {}

  static async open(dataDir: string): Promise<JsonlLedgerStore> {
    await mkdir(dataDir, { recursive: true });
    const path = join(dataDir, 'ledger.jsonl');
    let text = '';
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    const store = new JsonlLedgerStore(await open(path, 'a'));
    for (const raw of text.split('\n')) {
      if (!raw.trim()) continue;
      try {
        store.#apply(JSON.parse(raw) as Line);
      } catch {
        // a torn line from a crash mid-write: its response was never sent, so it never happened
      }
    }
    return store;
  }

  #apply(line: Line): void {
    const entry = line.entry;
    if (entry) {
      this.entries.push(entry);
      if (entry.kind === 'charge') this.#charges.set(entry.id, entry);
      else this.#refunded.set(entry.charge, (this.#refunded.get(entry.charge) ?? 0) + entry.amount);
    }
    if (line.idempotency) this.#keys.set(line.idempotency.key, line.idempotency);
  }

  charge(id: string): ChargeEntry | undefined {
    return this.#charges.get(id);
  }

  refundedAmount(chargeId: string): number {
    return this.#refunded.get(chargeId) ?? 0;
  }

  stored(idempotencyKey: string): StoredResponse | undefined {
    return this.#keys.get(idempotencyKey);
  }

  record(line: Line): Promise<void> {
    const write = this.#tail.then(async () => {
      await this.file.write(`${JSON.stringify(line)}\n`);
      await this.file.datasync();
      this.#apply(line);
    });
    this.#tail = write.catch(() => undefined);
    return write;
  }

  async close(): Promise<void> {
    await this.#tail;
    await this.file.close();
  }
}
