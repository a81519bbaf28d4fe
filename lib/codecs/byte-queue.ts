/** Zero bytes: what `take(0)` returns when nothing is queued (an empty view cannot alias anything). */
const EMPTY = Buffer.alloc(0);

/** Chunks up to this size are coalesced rather than queued one by one once the queue holds COALESCE_AFTER. */
const COALESCE_MAX = 1024;
const COALESCE_AFTER = 8;
/** Size of a coalescing block: queue entries stay at most one per KiB of data, however it trickles in. */
const COALESCE_BLOCK = 16 * 1024;

/** Memory a chunk may keep alive beyond the bytes it holds before {@link ByteQueue.compact} copies them out. */
const PIN_SLACK = 1024;

/**
 * The bytes a decoder has received and not consumed, as the chunks they came in: appended by reference,
 * never concatenated per chunk (ws's `Receiver` does the same with `_buffers` and `consume()`). Bytes that
 * lie in one chunk are taken as a view of it; bytes that span chunks are copied once, into a buffer of
 * exactly their size. Codecs are written on it: a custom codec gets the same memory behaviour as the
 * built-in ones.
 */
export class ByteQueue {
  readonly #chunks: Buffer[] = [];
  /** Read position inside `#chunks[0]`. */
  #offset = 0;
  #length = 0;
  /** Block that small chunks are coalesced into, and how much of it is filled. */
  #block: Buffer | null = null;
  #blockUsed = 0;

  /** Bytes queued. */
  get length(): number {
    return this.#length;
  }

  /** The first chunk (its unread bytes start at {@link headOffset}), or `undefined` when empty. */
  get head(): Buffer | undefined {
    return this.#chunks[0];
  }

  /** Where the unread bytes of {@link head} start. */
  get headOffset(): number {
    return this.#offset;
  }

  /** Appends bytes, by reference (small chunks trickling in are coalesced, see COALESCE_BLOCK). */
  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#length += chunk.length;
    // A frame trickling in as tiny chunks would otherwise cost one queue entry (a Buffer object, about
    // 100 bytes) per chunk: once the queue grows, small chunks are copied into a shared block instead.
    if (chunk.length <= COALESCE_MAX && this.#chunks.length >= COALESCE_AFTER) this.#append(chunk);
    else this.#chunks.push(chunk);
  }

  /** Whether the first `n` bytes lie in {@link head}, readable in place. */
  contiguous(n: number): boolean {
    const head = this.#chunks[0];
    return head !== undefined && head.length - this.#offset >= n;
  }

  /** The byte at `index` from the front (`index` < {@link length}). */
  at(index: number): number {
    let position = this.#offset + index;
    for (const chunk of this.#chunks) {
      if (position < chunk.length) return chunk[position]!;
      position -= chunk.length;
    }
    throw new RangeError(`byte ${index} of ${this.#length} queued`);
  }

  /**
   * Where `needle` (one byte, or a sequence) first occurs at or after `from`, counted from the front,
   * found across chunk boundaries; `-1` if it does not occur in the queued bytes.
   */
  indexOf(needle: number | Buffer, from = 0): number {
    const first = typeof needle === 'number' ? needle : needle[0]!;
    const size = typeof needle === 'number' ? 1 : needle.length;
    let base = -this.#offset; // position of the current chunk's byte 0, counted from the front
    for (const chunk of this.#chunks) {
      let position = Math.max(from - base, base < 0 ? this.#offset : 0);
      while (position < chunk.length) {
        const found = chunk.indexOf(first, position);
        if (found === -1) break;
        const index = base + found;
        if (index + size > this.#length) return -1;
        if (size === 1 || this.#matchesAt(needle as Buffer, index)) return index;
        position = found + 1;
      }
      base += chunk.length;
    }
    return -1;
  }

  /** Takes `n` bytes off the front: a view when they sit in one chunk, else one copy. */
  take(n: number): Buffer {
    const first = this.#chunks[0];
    if (first === undefined) return EMPTY;
    if (first.length - this.#offset >= n) {
      const view = first.subarray(this.#offset, this.#offset + n);
      this.skip(n);
      return view;
    }
    const bytes = Buffer.allocUnsafe(n);
    this.copyOut(bytes, n);
    return bytes;
  }

  /** Copies the first `n` bytes (at most {@link length}) into `target` and drops them. */
  copyOut(target: Buffer, n: number): void {
    this.peek(target, n);
    this.skip(n);
  }

  /** Copies the first `n` bytes (at most {@link length}) into `target`, leaving them queued. */
  peek(target: Buffer, n: number): void {
    let written = 0;
    let offset = this.#offset;
    for (const chunk of this.#chunks) {
      if (written >= n) break;
      const count = Math.min(chunk.length - offset, n - written);
      chunk.copy(target, written, offset, offset + count);
      written += count;
      offset = 0;
    }
  }

  /** Drops the first `n` bytes (at most {@link length}). */
  skip(n: number): void {
    this.#length -= n;
    this.#offset += n;
    let head = this.#chunks[0];
    while (head !== undefined && this.#offset >= head.length) {
      this.#offset -= head.length;
      this.#chunks.shift();
      head = this.#chunks[0];
    }
  }

  /**
   * Copies the bytes left at either end of the queue out of a chunk (or coalescing block) when they are
   * less than half of the memory it keeps alive, so that {@link length} is within 2× of what the queue
   * pins (Netty's cumulator discards read bytes the same way): one byte left after a whole 64 KiB frame
   * would otherwise hold the whole read chunk. Cheap to call after every read: it looks at two chunks.
   */
  compact(): void {
    const chunks = this.#chunks;
    if (chunks.length === 0) return;
    if (this.#pinsMore(chunks[0]!, this.#offset)) {
      chunks[0] = this.#copyOf(chunks[0]!, this.#offset);
      this.#offset = 0;
    }
    const last = chunks.length - 1;
    if (last > 0 && this.#pinsMore(chunks[last]!, 0)) chunks[last] = this.#copyOf(chunks[last]!, 0);
  }

  /** Whether `chunk`'s bytes from `start` are less than half of the memory the chunk keeps alive. */
  #pinsMore(chunk: Buffer, start: number): boolean {
    const held = chunk.length - start;
    const pinned = chunk.buffer.byteLength;
    return pinned - held > PIN_SLACK && held * 2 < pinned;
  }

  /** `chunk`'s bytes from `start` in memory of their own (a coalescing block they leave is not written again). */
  #copyOf(chunk: Buffer, start: number): Buffer {
    const copy = Buffer.allocUnsafeSlow(chunk.length - start);
    chunk.copy(copy, 0, start);
    if (this.#block !== null && chunk.buffer === this.#block.buffer) this.#block = null;
    return copy;
  }

  /** Drops everything. */
  clear(): void {
    this.#chunks.length = 0;
    this.#offset = 0;
    this.#length = 0;
  }

  #matchesAt(needle: Buffer, index: number): boolean {
    for (let i = 1; i < needle.length; i++) if (this.at(index + i) !== needle[i]) return false;
    return true;
  }

  /** Copies a small chunk into the coalescing block at the end of the queue (a new one when full). */
  #append(chunk: Buffer): void {
    const last = this.#chunks.length - 1;
    let block = this.#block;
    if (block === null || this.#chunks[last]!.buffer !== block.buffer || this.#blockUsed + chunk.length > block.length) {
      block = this.#block = Buffer.allocUnsafeSlow(COALESCE_BLOCK);
      this.#blockUsed = 0;
      this.#chunks.push(block.subarray(0, 0));
    }
    chunk.copy(block, this.#blockUsed);
    this.#blockUsed += chunk.length;
    // Bytes already taken lie before #blockUsed and are never written again.
    this.#chunks[this.#chunks.length - 1] = block.subarray(0, this.#blockUsed);
  }
}
