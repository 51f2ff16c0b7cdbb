// Which store failures a retry may cure. A commit refused "for good" becomes a recorded failed
// try, so a transient failure must never be classified so: the driver's own connection errors,
// which carry no SQLSTATE, are transient (a PostgreSQL restart under a commit once failed runs).
import { describe, expect, it } from "vitest"
import { isRetryableStoreCause } from "../../../adapters/postgres/PostgresStore.ts"

const withCode = (code: string, message = "server error") => Object.assign(new Error(message), { code })

describe("isRetryableStoreCause", () => {
  it("transient: connection loss, shutdown, serialization failures, deadlocks, the driver's own connection errors", () => {
    for (const cause of [
      withCode("08006"),
      withCode("57P01", "terminating connection due to administrator command"),
      withCode("40001"),
      withCode("40P01"),
      withCode("53300"),
      withCode("ECONNREFUSED"),
      new Error("Client has encountered a connection error and is not queryable"),
      new Error("Connection terminated unexpectedly"),
      new Error("timeout exceeded when trying to connect"),
    ]) {
      expect(isRetryableStoreCause(cause), String(cause)).toBe(true)
    }
  })

  it("for good: data, constraint and schema errors, and errors of our own code", () => {
    for (const cause of [
      withCode("22P05", "unsupported Unicode escape sequence"),
      withCode("22008", "timestamp out of range"),
      withCode("23505", "duplicate key value violates unique constraint"),
      withCode("42P01", 'relation "taskgraph_nodes" does not exist'),
      withCode("54001", "stack depth limit exceeded"),
      new TypeError("Do not know how to serialize a BigInt"),
      new RangeError("Maximum call stack size exceeded"),
    ]) {
      expect(isRetryableStoreCause(cause), String(cause)).toBe(false)
    }
  })
})
