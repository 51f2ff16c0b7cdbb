/**
 * ResourceNames: Pub/Sub's rules for `projects/P/topics/T` and `projects/P/subscriptions/S`.
 * An id starts with a letter, is 3 to 255 characters of letters, digits and `-_.~+%`, and does
 * not start with "goog", as the service enforces; anything else is INVALID_ARGUMENT.
 *
 * ```ts
 * const problem = resourceNameProblem("topics", "projects/p/topics/orders") // undefined
 * resourceNameProblem("topics", "orders") // "Invalid [topics] name: (name=orders)"
 * ```
 */

const idPattern = /^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$/

/** Why `name` is not a valid resource name of `kind`, or undefined. */
export const resourceNameProblem = (kind: "topics" | "subscriptions", name: string): string | undefined => {
  const parts = name.split("/")
  const valid =
    parts.length === 4 &&
    parts[0] === "projects" &&
    parts[1] !== "" &&
    parts[2] === kind &&
    idPattern.test(parts[3] ?? "") &&
    !(parts[3] ?? "").toLowerCase().startsWith("goog")
  return valid ? undefined : `Invalid [${kind}] name: (name=${name})`
}

/** The project part of a resource name or of `projects/P`. */
export const projectOf = (name: string): string => name.split("/")[1] ?? ""
