/**
 * MXFP4 in its two layouts (reference: gpt-oss-and-gguf.md §2.2 and §3.5).
 *
 * Hugging Face / OpenAI: per block of 32 input columns one UE8M0 scale byte (stored in a
 * separate `*_scales` tensor) and 16 data bytes where byte b holds element 2b (low nibble)
 * and 2b+1 (high nibble). ggml type 39: a 17-byte block [scale, 16 bytes] where byte j holds
 * element j (low nibble) and element j+16 (high nibble). The numbers are identical, so the
 * exporter copies scales and only permutes nibbles.
 */

export const MXFP4_BLOCK_ELEMENTS = 32;
export const MXFP4_HF_BLOCK_BYTES = 16;
export const MXFP4_GGML_BLOCK_BYTES = 17;

/** E2M1 code → value (bit 3 is the sign). */
export const E2M1_VALUES: readonly number[] = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6];
/** ggml's kvalues_mxfp4: the doubled E2M1 values it pairs with a 2^(e-128) scale. */
const GGML_DOUBLED_VALUES: readonly number[] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/**
 * Writes one ggml MXFP4 block (scale + repacked nibbles) at `out[outOffset]` from an HF
 * block's 16 bytes at `hf[hfOffset]` and its scale byte.
 */
export function repackHfBlockToGgml(hf: Uint8Array, hfOffset: number, scale: number, out: Uint8Array, outOffset: number): void {
  out[outOffset] = scale;
  // ggml byte 2k gets elements 2k and 2k+16 (low nibbles of HF bytes k and 8+k);
  // ggml byte 2k+1 gets elements 2k+1 and 2k+17 (their high nibbles).
  for (let k = 0; k < 8; k++) {
    const low = hf[hfOffset + k]!;
    const high = hf[hfOffset + 8 + k]!;
    out[outOffset + 1 + 2 * k] = (low & 0x0f) | ((high & 0x0f) << 4);
    out[outOffset + 2 + 2 * k] = (low >> 4) | (high & 0xf0);
  }
}

/** 2^(e-127) for a UE8M0 byte, exactly (no pow rounding concerns: powers of two are exact doubles). */
export function ue8m0Multiplier(scale: number): number {
  return 2 ** (scale - 127);
}

/** Dequantizes one HF block (§2.2) into `out[outOffset .. +32]`. */
export function dequantizeHfBlock(hf: Uint8Array, hfOffset: number, scale: number, out: Float32Array, outOffset: number): void {
  const multiplier = ue8m0Multiplier(scale);
  for (let b = 0; b < MXFP4_HF_BLOCK_BYTES; b++) {
    const byte = hf[hfOffset + b]!;
    out[outOffset + 2 * b] = E2M1_VALUES[byte & 0x0f]! * multiplier;
    out[outOffset + 2 * b + 1] = E2M1_VALUES[byte >> 4]! * multiplier;
  }
}

/** Dequantizes one ggml block (§3.5: doubled values × 2^(e-128)) into `out[outOffset .. +32]`. */
export function dequantizeGgmlBlock(block: Uint8Array, blockOffset: number, out: Float32Array, outOffset: number): void {
  const multiplier = 2 ** (block[blockOffset]! - 128);
  for (let j = 0; j < 16; j++) {
    const byte = block[blockOffset + 1 + j]!;
    out[outOffset + j] = GGML_DOUBLED_VALUES[byte & 0x0f]! * multiplier;
    out[outOffset + j + 16] = GGML_DOUBLED_VALUES[byte >> 4]! * multiplier;
  }
}

/**
 * Quantizes 32 floats to one ggml MXFP4 block with ggml's reference recipe: shared exponent
 * e = floor(log2(amax)) - 2 + 127, then per element the nearest code, the first code
 * winning ties. Used when merged (bf16) experts are asked to go back to MXFP4.
 */
export function quantizeGgmlBlock(values: Float32Array, valuesOffset: number, out: Uint8Array, outOffset: number): void {
  let amax = 0;
  for (let i = 0; i < MXFP4_BLOCK_ELEMENTS; i++) amax = Math.max(amax, Math.abs(values[valuesOffset + i]!));
  const exponent = amax > 0 ? Math.min(254, Math.max(0, floorLog2(amax) - 2 + 127)) : 0;
  const multiplier = 2 ** (exponent - 128);
  out[outOffset] = exponent;
  for (let j = 0; j < 16; j++) {
    const low = nearestDoubledCode(values[valuesOffset + j]! / multiplier);
    const high = nearestDoubledCode(values[valuesOffset + j + 16]! / multiplier);
    out[outOffset + 1 + j] = low | (high << 4);
  }
}

function nearestDoubledCode(scaled: number): number {
  let best = 0;
  let bestError = Infinity;
  for (let code = 0; code < 16; code++) {
    const error = Math.abs(GGML_DOUBLED_VALUES[code]! - scaled);
    if (error < bestError) {
      best = code;
      bestError = error;
    }
  }
  return best;
}

/** floor(log2(x)) for a positive finite x, exact (Math.log2 can round up just below a power of two). */
function floorLog2(x: number): number {
  let exponent = Math.floor(Math.log2(x));
  if (2 ** exponent > x) exponent -= 1;
  else if (2 ** (exponent + 1) <= x) exponent += 1;
  return exponent;
}

/**
 * Selects rows of an expert's HF MXFP4 storage and emits them as ggml blocks. `blocks` holds
 * [rows, blocksPerRow, 16] bytes and `scales` [rows, blocksPerRow] of one expert; `rows` lists
 * the source rows to keep, in output order (all rows, or the even/odd gate/up rows).
 */
export function repackExpertRows(blocks: Uint8Array, scales: Uint8Array, blocksPerRow: number, rows: readonly number[]): Buffer {
  const out = Buffer.allocUnsafe(rows.length * blocksPerRow * MXFP4_GGML_BLOCK_BYTES);
  let outOffset = 0;
  for (const row of rows) {
    for (let g = 0; g < blocksPerRow; g++) {
      const block = row * blocksPerRow + g;
      repackHfBlockToGgml(blocks, block * MXFP4_HF_BLOCK_BYTES, scales[block]!, out, outOffset);
      outOffset += MXFP4_GGML_BLOCK_BYTES;
    }
  }
  return out;
}

/** Same selection as repackExpertRows, dequantized to float32 [rows.length, blocksPerRow * 32]. */
export function dequantizeExpertRows(blocks: Uint8Array, scales: Uint8Array, blocksPerRow: number, rows: readonly number[]): Float32Array {
  const out = new Float32Array(rows.length * blocksPerRow * MXFP4_BLOCK_ELEMENTS);
  let outOffset = 0;
  for (const row of rows) {
    for (let g = 0; g < blocksPerRow; g++) {
      const block = row * blocksPerRow + g;
      dequantizeHfBlock(blocks, block * MXFP4_HF_BLOCK_BYTES, scales[block]!, out, outOffset);
      outOffset += MXFP4_BLOCK_ELEMENTS;
    }
  }
  return out;
}

/** Quantizes float32 rows [rowCount, rowLength] (rowLength a multiple of 32) to ggml MXFP4 blocks. */
export function quantizeRows(values: Float32Array): Buffer {
  const blockCount = values.length / MXFP4_BLOCK_ELEMENTS;
  const out = Buffer.allocUnsafe(blockCount * MXFP4_GGML_BLOCK_BYTES);
  for (let b = 0; b < blockCount; b++) quantizeGgmlBlock(values, b * MXFP4_BLOCK_ELEMENTS, out, b * MXFP4_GGML_BLOCK_BYTES);
  return out;
}
