/**
 * GPT-2's byte-to-unicode alphabet. Byte-level BPE tokenizers (tokenizer.json with a ByteLevel
 * pre-tokenizer, GGUF `tokenizer.ggml.model = gpt2`) store every token as text in which each
 * byte is one printable character, so that tokens that are not valid UTF-8 (half of an emoji)
 * and tokens with spaces or control bytes still fit in a JSON string and in "left right" merges.
 * Printable Latin-1 bytes map to themselves; the other 68 bytes map to U+0100 onwards, in order.
 */

function buildByteAlphabet(): readonly string[] {
  const printable = (byte: number): boolean =>
    (byte >= 0x21 && byte <= 0x7e) || (byte >= 0xa1 && byte <= 0xac) || (byte >= 0xae && byte <= 0xff);
  const alphabet: string[] = [];
  let shifted = 0;
  for (let byte = 0; byte < 256; byte += 1) {
    alphabet.push(String.fromCharCode(printable(byte) ? byte : 256 + shifted++));
  }
  return alphabet;
}

/** Character for each byte value 0..255 (index = byte). */
export const BYTE_TO_UNICODE: readonly string[] = buildByteAlphabet();

const UNICODE_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_UNICODE.map((char, byte) => [char, byte]));

/** Byte-level text of a byte sequence: one character per byte. */
export function bytesToUnicode(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += BYTE_TO_UNICODE[byte];
  return text;
}

/** Bytes of a byte-level text; throws on a character outside the alphabet. */
export function unicodeToBytes(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let index = 0; index < text.length; index += 1) {
    const byte = UNICODE_TO_BYTE.get(text.charAt(index));
    if (byte === undefined) {
      throw new Error(`"${text}" is not byte-level text: U+${text.charCodeAt(index).toString(16)} is not in the alphabet.`);
    }
    bytes[index] = byte;
  }
  return bytes;
}
