/**
 * Storable: what PostgreSQL's `jsonb` and `text` cannot hold, found before anything is written.
 * A NUL (U+0000) is refused in both, a lone UTF-16 surrogate (text cut mid-emoji with `.slice()`)
 * has no UTF-8 form, and JSON nested beyond `maxJsonDepth` overflows a stack on the way (in
 * `JSON.stringify` or in the server's parser). Such a value in a commit fails it on every try,
 * whatever is retried, so the engine checks before: a task's output that cannot be stored is a
 * failed try (`UnstorableOutput`), a start's input is `InvalidInput`, free text (error messages,
 * revoke reasons) is cleaned with `storableText`.
 *
 * ```ts
 * unstorable({ name: "a\u0000b" })   // 'at $.name: the string holds a NUL (U+0000), which PostgreSQL cannot store'
 * storableText("cut \uD83D")          // "cut \uFFFD"
 * ```
 */

/** Values nested deeper than this (arrays and objects) are refused; PostgreSQL's parser takes 2,000 here. */
export const maxJsonDepth = 1000

// with the `u` flag a well-formed surrogate pair is one code point, so `\p{Cs}` matches lone halves only
const loneSurrogate = /\p{Cs}/u
const loneSurrogates = /\p{Cs}/gu

/** Why `text` cannot be stored, or undefined. */
export const textProblem = (text: string): string | undefined => {
  if (text.includes("\u0000")) return "holds a NUL (U+0000), which PostgreSQL cannot store"
  if (loneSurrogate.test(text)) return "holds a lone UTF-16 surrogate (text cut inside a character?), which has no UTF-8 form"
  return undefined
}

/** True when PostgreSQL stores `text` exactly as given (see `textProblem`). */
export const isStorableText = (text: string): boolean => textProblem(text) === undefined

/** `text` with every NUL written `\0` and every lone surrogate replaced by U+FFFD: free text that must be kept. */
export const storableText = (text: string): string =>
  textProblem(text) === undefined ? text : text.split("\u0000").join("\\0").replace(loneSurrogates, "\uFFFD")

/**
 * The first `length` code units of `text`, never ending inside a surrogate pair (a plain
 * `.slice()` would leave half of it).
 */
export const truncateText = (text: string, length: number): string => {
  if (text.length <= length) return text
  const code = text.charCodeAt(length - 1)
  return text.slice(0, code >= 0xd800 && code <= 0xdbff ? length - 1 : length)
}

const pathOf = (parent: string, key: string | number): string =>
  typeof key === "number" ? `${parent}[${key}]` : /^[A-Za-z_$][\w$]*$/.test(key) ? `${parent}.${key}` : `${parent}[${JSON.stringify(storableText(key))}]`

/**
 * Why the JSON value `value` (as `JSON.stringify` would write it) cannot be stored, naming where
 * (`at $.items[3].name: …`); undefined when it can. Iterative, so a deep value cannot overflow
 * the check itself; a cycle is reported as nesting too deep.
 */
export const unstorable = (value: unknown): string | undefined => {
  const stack: Array<{ readonly value: unknown; readonly path: string; readonly depth: number }> = [{ value, path: "$", depth: 0 }]
  while (stack.length > 0) {
    const { value: current, path, depth } = stack.pop()!
    let v = current
    if (typeof v === "object" && v !== null && typeof (v as { toJSON?: unknown }).toJSON === "function") {
      v = (v as { toJSON: () => unknown }).toJSON()
    }
    switch (typeof v) {
      case "string": {
        const problem = textProblem(v)
        if (problem !== undefined) return `at ${path}: the string ${problem}`
        break
      }
      case "bigint":
        return `at ${path}: a bigint has no JSON form`
      case "object": {
        if (v === null) break
        if (depth >= maxJsonDepth) return `at ${path}: the value is nested deeper than ${maxJsonDepth} levels (or is circular)`
        if (Array.isArray(v)) {
          for (let i = v.length - 1; i >= 0; i--) stack.push({ value: v[i], path: pathOf(path, i), depth: depth + 1 })
        } else {
          const keys = Object.keys(v)
          for (let i = keys.length - 1; i >= 0; i--) {
            const key = keys[i]!
            const problem = textProblem(key)
            if (problem !== undefined) return `at ${pathOf(path, key)}: the key ${problem}`
            stack.push({ value: (v as Record<string, unknown>)[key], path: pathOf(path, key), depth: depth + 1 })
          }
        }
        break
      }
      default:
        // numbers (NaN and ±Infinity are written null), booleans; undefined, functions and symbols are left out
        break
    }
  }
  return undefined
}
