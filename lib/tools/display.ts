/** How `pulsar send` shows a payload: `auto` (UTF-8 text when printable, else a hex dump), `hex`, `json`. */
export type DisplayMode = 'auto' | 'hex' | 'json';

const decoder = new TextDecoder('utf-8', { fatal: true });

/** The payload as text, when it is valid UTF-8 with no control characters but tab, CR and LF; else `null`. */
export function printableText(payload: Uint8Array): string | null {
  let text: string;
  try {
    text = decoder.decode(payload);
  } catch {
    return null;
  }
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(text) ? null : text;
}

/**
 * A hex dump as `xxd` prints it: offset, 16 bytes in pairs, and the printable ASCII (others as `.`), one
 * line per 16 bytes; `(empty)` for nothing.
 */
export function hexDump(payload: Uint8Array): string {
  if (payload.length === 0) return '(empty)';
  const lines: string[] = [];
  for (let offset = 0; offset < payload.length; offset += 16) {
    const row = payload.subarray(offset, offset + 16);
    const hex = Buffer.from(row).toString('hex').replace(/(.{4})/g, '$1 ').trimEnd();
    const ascii = Array.from(row, (byte) => (byte >= 0x20 && byte < 0x7f ? String.fromCharCode(byte) : '.')).join('');
    lines.push(`${offset.toString(16).padStart(8, '0')}: ${hex.padEnd(39)}  ${ascii}`);
  }
  return lines.join('\n');
}

/** A payload as `mode` shows it; `json` falls back to `auto` (marked) for a payload that is not JSON. */
export function display(payload: Uint8Array, mode: DisplayMode): string {
  if (mode === 'hex') return hexDump(payload);
  const text = printableText(payload);
  if (mode === 'json') {
    if (text !== null) {
      try {
        return JSON.stringify(JSON.parse(text));
      } catch {
        // not JSON: shown as it is, said so
      }
    }
    return `(not JSON) ${text ?? `\n${hexDump(payload)}`}`;
  }
  if (text === null) return hexDump(payload);
  return text === '' ? '(empty)' : text;
}

/**
 * The payload a typed message stands for: its UTF-8 bytes, or with `hex` the bytes its hex digits spell
 * (spaces allowed), or with `json` its UTF-8 bytes once checked to be JSON.
 * @throws {TypeError} for hex that is not hex, or text that is not JSON
 */
export function payloadOf(message: string, mode: DisplayMode): Buffer {
  if (mode === 'hex') {
    const digits = message.replace(/\s+/g, '');
    if (!/^(?:[0-9a-f]{2})*$/i.test(digits)) throw new TypeError(`not hex bytes: '${message}'`);
    return Buffer.from(digits, 'hex');
  }
  if (mode === 'json') JSON.parse(message); // throws a SyntaxError naming the problem
  return Buffer.from(message, 'utf8');
}

/** Milliseconds with the precision a round trip on a LAN deserves. */
export function formatMs(ms: number): string {
  return ms < 10 ? `${ms.toFixed(2)} ms` : ms < 100 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}
