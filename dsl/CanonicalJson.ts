/**
 * canonicalJson: JSON with object keys sorted (and undefined members dropped), so equal values
 * always give equal text — what definition hashes and deduplication keys are computed from.
 */
export const canonicalJson = (value: unknown): string => {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`
  if (value !== null && typeof value === "object") {
    const record = value as Record<string, unknown>
    const keys = Object.keys(record).filter((k) => record[k] !== undefined).sort()
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(record[k])}`).join(",")}}`
  }
  return JSON.stringify(value) ?? "null"
}
