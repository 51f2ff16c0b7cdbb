/**
 * AmbientTransaction: the caller's transaction as found where a Promise API was called (by the
 * runtime, synchronously, from the ORM's transaction context), as a value the store adapter
 * understands. A start given no `em` writes in it; unset, a start commits on its own.
 */
import { Context } from "effect"

export const AmbientTransaction = Context.Reference<unknown>("taskgraph/AmbientTransaction", {
  defaultValue: () => undefined,
})
