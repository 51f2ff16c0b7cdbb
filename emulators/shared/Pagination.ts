/**
 * Pagination: the List RPCs' `page_size` / `page_token`, as keyset pages over items sorted by
 * their resource name. The token is the last name returned (base64url), so a page stays right
 * when items are added or deleted between calls; a token the emulator did not make is refused.
 *
 * ```ts
 * const page = paginate(sortedQueues, (q) => q.name, request.pageSize, request.pageToken, 9800)
 * // RpcResult<{ items, nextPageToken }>; nextPageToken "" on the last page
 * ```
 */
import { fail, type RpcResult, succeed } from "./RpcFailure.ts"

export interface Page<A> {
  readonly items: ReadonlyArray<A>
  readonly nextPageToken: string
}

/** Orders resource names as the services list them (by code unit, not locale). */
export const compareNames = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

/** A page of `items` (sorted by `keyOf`); page size 0 means `maxPage`, larger sizes are capped. */
export const paginate = <A>(
  items: ReadonlyArray<A>,
  keyOf: (a: A) => string,
  pageSize: number,
  pageToken: string,
  maxPage: number,
): RpcResult<Page<A>> => {
  if (pageSize < 0) return fail("INVALID_ARGUMENT", "page_size must not be negative.")
  const size = pageSize === 0 ? maxPage : Math.min(pageSize, maxPage)
  let start = 0
  if (pageToken !== "") {
    const after = Buffer.from(pageToken, "base64url").toString("utf8")
    if (after === "" || Buffer.from(after, "utf8").toString("base64url") !== pageToken)
      return fail("INVALID_ARGUMENT", "Invalid page_token.")
    start = items.findIndex((item) => keyOf(item) > after)
    if (start === -1) start = items.length
  }
  const page = items.slice(start, start + size)
  const last = page.at(-1)
  const more = start + size < items.length && last !== undefined
  return succeed({ items: page, nextPageToken: more ? Buffer.from(keyOf(last), "utf8").toString("base64url") : "" })
}
