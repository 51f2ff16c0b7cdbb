/**
 * Ids: run ids are UUIDv7 (RFC 9562): 48 bits of the creation time in milliseconds, then random
 * bits. Ids made close in time sort close together, so the primary keys of runs and of their nodes
 * (which lead with the run id) take new rows at their right edge instead of at random pages: a
 * batch of starts touches a few index pages, not one per run. Still unguessable (74 random bits),
 * and any UUID column or parser takes them.
 */
import { getRandomValues } from "node:crypto"

const hex = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"))

// random bytes drawn 4 KiB at a time: one call to the system's generator per 256 ids, not per id
const pool = new Uint8Array(4096)
let offset = pool.length

/** A UUIDv7 for `now` (epoch ms). */
export const uuidv7 = (now: number = Date.now()): string => {
  if (offset + 16 > pool.length) {
    getRandomValues(pool)
    offset = 0
  }
  const bytes = pool.subarray(offset, offset + 16)
  offset += 16
  const ms = Math.max(0, Math.floor(now))
  // 48-bit big-endian timestamp (2^48 ms reaches the year 10889)
  bytes[0] = Math.floor(ms / 2 ** 40) & 0xff
  bytes[1] = Math.floor(ms / 2 ** 32) & 0xff
  bytes[2] = (ms >>> 24) & 0xff
  bytes[3] = (ms >>> 16) & 0xff
  bytes[4] = (ms >>> 8) & 0xff
  bytes[5] = ms & 0xff
  bytes[6] = (bytes[6]! & 0x0f) | 0x70 // version 7
  bytes[8] = (bytes[8]! & 0x3f) | 0x80 // RFC 9562 variant
  let text = ""
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) text += "-"
    text += hex[bytes[i]!]
  }
  return text
}
