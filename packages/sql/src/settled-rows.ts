/**
 * Rows that never change once written (first insert wins, no update, no delete), kept in memory by
 * key so that reading one again costs no statement. Holds at most `capacity` rows, the most recently
 * used last; the oldest is forgotten beyond that. Only a row the store returned, or one this process
 * wrote, may be kept: a row that does not exist yet is not remembered as missing.
 */
export class SettledRows<V> {
  readonly #rows = new Map<string, V>();

  constructor(readonly capacity = 10_000) {}

  get(key: string): V | undefined {
    const row = this.#rows.get(key);
    if (row !== undefined) this.keep(key, row);
    return row;
  }

  keep(key: string, row: V): void {
    if (this.capacity <= 0) return;
    this.#rows.delete(key);
    this.#rows.set(key, row);
    if (this.#rows.size > this.capacity) this.#rows.delete(this.#rows.keys().next().value as string);
  }

  /** The row of `key`: from memory, else `read` (kept when found). */
  async through(key: string, read: () => Promise<V | undefined>): Promise<V | undefined> {
    const known = this.get(key);
    if (known !== undefined) return known;
    const row = await read();
    if (row !== undefined) this.keep(key, row);
    return row;
  }
}
