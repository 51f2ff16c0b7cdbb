/**
 * Callback: the small, versioned message that asks the engine to advance one node. It carries
 * ids only (invariant 2): results live in PostgreSQL.
 *
 * A callback arrives from outside, so every field is bounded to what PostgreSQL stores as given:
 * ids are storable text (`storableTextCheck`) and the attempt fits PostgreSQL's `int`. Anything else is
 * refused when decoding (the routes answer 400), instead of failing in the store (a 500 that
 * Cloud Tasks would retry) or being stored as a different string.
 */
import { Schema } from "effect"
import { isStorableText } from "./Storable.ts"

export const CallbackVersion = 1

/** The largest attempt number: PostgreSQL's `int` (the column type of every attempt). */
export const maxAttempt = 2_147_483_647

// U+0000 is the one character a PostgreSQL text value cannot hold (the insert fails); a lone
// UTF-16 surrogate has no UTF-8 encoding, so the driver would send U+FFFD in its place and the
// row would name another string than the one asked for (engine/Storable.ts).

/** A string check: text PostgreSQL stores as given (for every string a request carries to the store). */
export const storableTextCheck = () =>
  Schema.makeFilter<string>((text) => isStorableText(text) || "text without U+0000 or a lone UTF-16 surrogate", {
    expected: "text without U+0000 or a lone UTF-16 surrogate",
  })

/** 1 to `max` UTF-16 units of storable text. */
export const StorableString = (max: number) =>
  Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(max), storableTextCheck())

/** The longest run id a request may carry (a UUID is 36). */
export const maxRunIdLength = 64

/** The longest node id a request may carry. */
export const maxNodeIdLength = 512

export const Callback = Schema.Struct({
  v: Schema.Literal(CallbackVersion),
  run: StorableString(maxRunIdLength),
  node: StorableString(maxNodeIdLength),
  attempt: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: maxAttempt })),
})
export type Callback = typeof Callback.Type

export const CallbackJson = Schema.fromJsonString(Callback)

/** Callback bodies above this size are refused before parsing. */
export const maxCallbackBytes = 2048
