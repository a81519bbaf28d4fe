import { checkKnownOptions } from '../util/validate.js';
import type { CodecLimitOptions } from './types.js';
import { DelimiterCodec } from './delimiter.js';

/** Options of {@link LineCodec}. */
export type LineCodecOptions = CodecLimitOptions;

/**
 * Text lines (Netty's `LineBasedFrameDecoder`, tokio's `LinesCodec`, npm's `split2`): frames end with
 * `\n`, and a `\r` just before it is part of the line ending (`\r\n` is accepted and stripped). The
 * handler gets each line without its ending, as bytes; `send()` appends `\n`.
 *
 * @example
 * ```ts
 * new PulsarServer({ codec: new LineCodec({ maxFrameLength: 8192 }), handler: (line, conn) => conn.send(line.toString().toUpperCase()) });
 * ```
 */
export class LineCodec extends DelimiterCodec {
  /** @param options the limits of {@link CodecLimitOptions}; every field is optional */
  constructor(options: LineCodecOptions = {}) {
    checkKnownOptions('LineCodec', options, { maxFrameLength: true, onTooLong: true });
    super({ ...options, delimiter: '\n' });
  }

  /** A `\r` before the `\n` belongs to the line ending. */
  protected override get stripsCarriageReturn(): boolean {
    return true;
  }
}
