/**
 * SHA-256 (FIPS 180-4) in plain JavaScript, fed any number of byte arrays.
 *
 * Direct uploads declare the SHA-256 of what they send: of the whole file for
 * a single PUT, of each part for a multipart upload. ``crypto.subtle.digest()``
 * computes it natively, but only over bytes already in memory (it cannot hash
 * a stream) and only in secure contexts (HTTPS, or localhost). This module
 * hashes incrementally instead, one slice at a time, so that memory stays at
 * one chunk whatever the file's size, on any origin::
 *
 *     import { Sha256, hashBlob } from "./sha256.js";
 *
 *     const hex = await hashBlob(file, { onProgress: (done, total) => ... });
 *
 *     const hash = new Sha256();
 *     hash.update(bytes1).update(bytes2);
 *     hash.hexdigest();          // 64 lowercase hex digits; the hash is finished
 *
 *     // A part of an upload: WebCrypto where it exists and the part is small enough to hold.
 *     await digestBlob(file.slice(start, end), { webCryptoMax: 32 * 1024 * 1024 });
 *
 * No dependency, no build step: an ES module, also imported by the hashing
 * worker (``hash-worker.js``).
 */

/** How many bytes hashBlob() reads at a time, unless told. */
export const CHUNK_SIZE = 4 * 1024 * 1024;

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

function rotr(x, n) {
  return (x >>> n) | (x << (32 - n));
}

/** Bytes (an ArrayBuffer or a Uint8Array) as lowercase hex digits. */
export function toHex(bytes) {
  const array = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let hex = "";
  for (const byte of array) hex += byte.toString(16).padStart(2, "0");
  return hex;
}

export class Sha256 {
  constructor() {
    this.state = new Uint32Array([
      0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ]);
    this.words = new Uint32Array(64);
    this.pending = new Uint8Array(64); // bytes waiting for a full 64-byte block
    this.pendingLength = 0;
    this.length = 0; // bytes hashed so far; exact up to 2^53
    this.finished = false;
  }

  /** Add bytes (a Uint8Array); returns this. */
  update(bytes) {
    if (this.finished) throw new Error("This SHA-256 is finished; start a new one.");
    this.length += bytes.length;
    let offset = 0;
    if (this.pendingLength > 0) {
      offset = Math.min(64 - this.pendingLength, bytes.length);
      this.pending.set(bytes.subarray(0, offset), this.pendingLength);
      this.pendingLength += offset;
      if (this.pendingLength < 64) return this;
      this.block(this.pending, 0);
      this.pendingLength = 0;
    }
    for (; offset + 64 <= bytes.length; offset += 64) this.block(bytes, offset);
    this.pending.set(bytes.subarray(offset), 0);
    this.pendingLength = bytes.length - offset;
    return this;
  }

  /** Finish: the digest as 64 lowercase hex digits. */
  hexdigest() {
    const bits = this.length * 8;
    // 0x80, zeros up to 56 bytes modulo 64, then the length in bits (64-bit big-endian).
    const padding = new Uint8Array((this.pendingLength < 56 ? 64 : 128) - this.pendingLength);
    padding[0] = 0x80;
    const view = new DataView(padding.buffer);
    view.setUint32(padding.length - 8, Math.floor(bits / 0x100000000));
    view.setUint32(padding.length - 4, bits >>> 0);
    this.update(padding);
    this.finished = true;
    return Array.from(this.state, (word) => word.toString(16).padStart(8, "0")).join("");
  }

  /** One 64-byte block at bytes[offset:]. */
  block(bytes, offset) {
    const w = this.words;
    for (let t = 0; t < 16; t++, offset += 4) {
      w[t] = (bytes[offset] << 24) | (bytes[offset + 1] << 16) | (bytes[offset + 2] << 8) | bytes[offset + 3];
    }
    for (let t = 16; t < 64; t++) {
      const x = w[t - 15];
      const y = w[t - 2];
      const s0 = rotr(x, 7) ^ rotr(x, 18) ^ (x >>> 3);
      const s1 = rotr(y, 17) ^ rotr(y, 19) ^ (y >>> 10);
      w[t] = w[t - 16] + s0 + w[t - 7] + s1; // a Uint32Array keeps it modulo 2^32
    }
    const s = this.state;
    let a = s[0], b = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];
    for (let t = 0; t < 64; t++) {
      const t1 = (h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + w[t]) | 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      h = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    s[0] += a;
    s[1] += b;
    s[2] += c;
    s[3] += d;
    s[4] += e;
    s[5] += f;
    s[6] += g;
    s[7] += h;
  }
}

/**
 * The SHA-256 of a Blob (or File), read chunkSize bytes at a time.
 *
 * onProgress(done, total) is called after each chunk, with byte counts.
 */
export async function hashBlob(blob, { chunkSize = CHUNK_SIZE, onProgress = null } = {}) {
  const hash = new Sha256();
  for (let offset = 0; offset < blob.size; offset += chunkSize) {
    const chunk = await blob.slice(offset, offset + chunkSize).arrayBuffer();
    hash.update(new Uint8Array(chunk));
    if (onProgress) onProgress(Math.min(offset + chunkSize, blob.size), blob.size);
  }
  return hash.hexdigest();
}

/**
 * WebCrypto's SubtleCrypto if digestBlob() would use it for `size` bytes, else null: it exists only in
 * secure contexts (HTTPS, localhost), and hashes bytes held in memory whole, hence the bound.
 */
export function webCryptoFor(size, { webCrypto = true, webCryptoMax = 32 * 1024 * 1024 } = {}) {
  const crypto = globalThis.crypto;
  const subtle = crypto && crypto.subtle && typeof crypto.subtle.digest === "function" ? crypto.subtle : null;
  return webCrypto && size <= webCryptoMax ? subtle : null;
}

/**
 * The SHA-256 of a Blob: with WebCrypto (native, several times faster) when it exists, `webCrypto` is
 * true and the blob is at most `webCryptoMax` bytes, since it must be held in memory whole; otherwise
 * incrementally here, one chunk at a time. onProgress(done, total) as for hashBlob().
 */
export async function digestBlob(
  blob,
  { chunkSize = CHUNK_SIZE, webCrypto = true, webCryptoMax = 32 * 1024 * 1024, onProgress = null } = {},
) {
  const subtle = webCryptoFor(blob.size, { webCrypto, webCryptoMax });
  if (subtle === null) return hashBlob(blob, { chunkSize, onProgress });
  // Read in chunks (not blob.arrayBuffer()) only to report progress as the bytes come off the disk.
  const bytes = new Uint8Array(blob.size);
  for (let offset = 0; offset < blob.size; offset += chunkSize) {
    const chunk = new Uint8Array(await blob.slice(offset, offset + chunkSize).arrayBuffer());
    bytes.set(chunk, offset);
    if (onProgress) onProgress(offset + chunk.length, blob.size);
  }
  return toHex(await subtle.digest("SHA-256", bytes));
}
