/**
 * The run history's JSON routes (engine/History.ts), added to a Hono app by `addHistoryRoutes`;
 * `taskgraphRoutes` adds them when given a `history`. Every route is a GET, authenticated first
 * by the routes' authenticator (over the method, the path with its query and an empty body).
 *
 * - `GET /runs?workflow=…&status=…&from=…&to=…&key=…&error=…&cursor=…&limit=…`: a page of runs,
 *   newest first, `{ runs, next }`; pass `next` back as `cursor`. `workflow` and `status` repeat
 *   (`status` also takes a comma-separated list); `from` (inclusive) and `to` (exclusive) are
 *   ISO 8601 instants; `key` is an idempotency key; `error` is text in the error message
 *   (case-insensitive); `limit` is 1 to 500 (default 50).
 * - `GET /runs/counts?…`: the same filters (no cursor or limit): `{ total, byStatus }`.
 * - `GET /runs/:id/detail[?full=true][&maxBytes=N]`: the run with its graph, nodes, tries,
 *   progress and timeline; values past 4 KiB (or `maxBytes`) cut unless `full`.
 * - `GET /runs/:id/nodes/:node/input|output`, `GET /runs/:id/input|output`: one value in full,
 *   `{ run, node, side, bytes, value }`.
 *
 * Unknown runs and nodes answer 404; a bad parameter (an unknown one included, so a typo never
 * widens a list silently) 400 `{ error: "invalid_query", message, field }`; a store failure 503
 * when a retry may cure it, else 500. Nothing here writes.
 */
import { Effect, Exit } from "effect"
import type { Context, Hono } from "hono"
import type { InvalidHistoryQuery, ListQuery, RunFilter, RunHistoryShape, ValueSide } from "../../engine/History.ts"
import type { RunStatus, StoreError } from "../../engine/WorkflowStore.ts"
import type { Authenticator } from "./Authenticator.ts"
import { failureAnswer, problem, refuseRunId, refuseUnauthenticated } from "./Http.ts"

export interface HistoryRoutesOptions {
  /** The same authenticator as the other routes: reading runs is never open. */
  readonly authenticate: Authenticator
  /** Told about every 5xx cause; default `console.error`. */
  readonly onError?: (error: unknown) => void
}

/** The engine's field names as the query names them. */
const paramOf: Record<string, string> = {
  workflow: "workflow",
  status: "status",
  createdFrom: "from",
  createdTo: "to",
  idempotencyKey: "key",
  errorText: "error",
  cursor: "cursor",
  limit: "limit",
  maxValueBytes: "maxBytes",
  node: "node",
}

class BadParam extends Error {
  readonly field: string
  constructor(field: string, message: string) {
    super(message)
    this.field = field
  }
}

const filterParams = ["workflow", "status", "from", "to", "key", "error"] as const
const listParams = new Set<string>([...filterParams, "cursor", "limit"])
const countParams = new Set<string>(filterParams)
const detailParams = new Set<string>(["full", "maxBytes"])

const instant = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2}))?$/i

/** The query's parameters, each name allowed and (but `workflow` and `status`) given once. */
const paramsOf = (c: Context, allowed: ReadonlySet<string>): Map<string, ReadonlyArray<string>> => {
  const all = c.req.queries()
  const out = new Map<string, ReadonlyArray<string>>()
  for (const [name, values] of Object.entries(all)) {
    if (!allowed.has(name)) throw new BadParam(name, `unknown parameter "${name.slice(0, 50)}" (allowed: ${[...allowed].join(", ")})`)
    if (name !== "workflow" && name !== "status" && values.length > 1) throw new BadParam(name, `${name} is given more than once`)
    out.set(name, values)
  }
  return out
}

const one = (params: Map<string, ReadonlyArray<string>>, name: string): string | undefined => params.get(name)?.[0]

const dateParam = (params: Map<string, ReadonlyArray<string>>, name: string): Date | undefined => {
  const text = one(params, name)
  if (text === undefined) return undefined
  const date = new Date(text)
  if (!instant.test(text) || Number.isNaN(date.getTime())) throw new BadParam(name, `${name} must be an ISO 8601 instant, e.g. 2026-12-01T09:30:00Z`)
  return date
}

const filterOf = (params: Map<string, ReadonlyArray<string>>): RunFilter => {
  const workflow = params.get("workflow")
  const status = params.get("status")?.flatMap((s) => s.split(",")).map((s) => s.trim())
  if (status?.includes("")) throw new BadParam("status", "status names one or more statuses, comma-separated")
  const from = dateParam(params, "from")
  const to = dateParam(params, "to")
  const key = one(params, "key")
  const error = one(params, "error")
  return {
    ...(workflow === undefined ? {} : { workflow }),
    ...(status === undefined ? {} : { status: status as Array<RunStatus> }),
    ...(from === undefined ? {} : { createdFrom: from }),
    ...(to === undefined ? {} : { createdTo: to }),
    ...(key === undefined ? {} : { idempotencyKey: key }),
    ...(error === undefined ? {} : { errorText: error }),
  }
}

const integerParam = (params: Map<string, ReadonlyArray<string>>, name: string): number | undefined => {
  const text = one(params, name)
  if (text === undefined) return undefined
  if (!/^\d{1,10}$/.test(text)) throw new BadParam(name, `${name} must be a whole number`)
  return Number(text)
}

const listOf = (params: Map<string, ReadonlyArray<string>>): ListQuery => {
  const cursor = one(params, "cursor")
  const limit = integerParam(params, "limit")
  return { ...filterOf(params), ...(cursor === undefined ? {} : { cursor }), ...(limit === undefined ? {} : { limit }) }
}

/** Adds the history routes to `app` (see the header); returns `app`. */
export const addHistoryRoutes = (app: Hono, history: RunHistoryShape, options: HistoryRoutesOptions): Hono => {
  const authenticator = options.authenticate
  const report = options.onError ?? ((error: unknown) => console.error("taskgraph:", error))

  /** Authenticates, reads the parameters, runs the read; its answer, 4xx and 5xx included. */
  const serve = async <A>(
    c: Context,
    read: () => Effect.Effect<A, StoreError | InvalidHistoryQuery>,
    answer: (value: A) => Response,
  ): Promise<Response> => {
    const refused = await refuseUnauthenticated(c, authenticator, new Uint8Array(0), report)
    if (refused !== undefined) return refused
    let effect: Effect.Effect<A, StoreError | InvalidHistoryQuery>
    try {
      const badId = refuseRunId(c, c.req.param("id") ?? "")
      if (badId !== undefined) return badId
      effect = read()
    } catch (error) {
      if (error instanceof BadParam) return problem(c, 400, "invalid_query", error.message, { field: error.field })
      throw error
    }
    const exit = await Effect.runPromiseExit(effect)
    return Exit.isSuccess(exit) ? answer(exit.value) : failureAnswer(c, exit.cause, report, (field) => paramOf[field] ?? field)
  }

  app.get("/runs", (c) => serve(c, () => history.list(listOf(paramsOf(c, listParams))), (page) => c.json(page, 200)))

  app.get("/runs/counts", (c) => serve(c, () => history.counts(filterOf(paramsOf(c, countParams))), (counts) => c.json(counts, 200)))

  app.get("/runs/:id/detail", (c) =>
    serve(
      c,
      () => {
        const params = paramsOf(c, detailParams)
        const full = one(params, "full")
        if (full !== undefined && !["true", "false", "1", "0"].includes(full)) throw new BadParam("full", "full must be true or false")
        const maxValueBytes = integerParam(params, "maxBytes")
        return history.get(c.req.param("id"), { full: full === "true" || full === "1", ...(maxValueBytes === undefined ? {} : { maxValueBytes }) })
      },
      (run) => (run === null ? problem(c, 404, "not_found", "no such run") : c.json(run, 200)),
    ))

  const sideOf = (text: string | undefined): ValueSide => {
    if (text !== "input" && text !== "output") throw new BadParam("side", "the value is input or output")
    return text
  }
  const valueRoute = (node: (c: Context) => string | null) => (c: Context) =>
    serve(
      c,
      () => {
        paramsOf(c, new Set())
        return history.value(c.req.param("id")!, node(c), sideOf(c.req.param("side")))
      },
      (found) =>
        found === null
          ? problem(c, 404, "not_found", node(c) === null ? "no such run" : "no such run or node")
          : c.json({ run: c.req.param("id"), node: node(c), side: c.req.param("side"), bytes: found.bytes, value: found.value }, 200),
    )
  app.get("/runs/:id/nodes/:node/:side", valueRoute((c) => c.req.param("node") ?? ""))
  app.get("/runs/:id/:side{input|output}", valueRoute(() => null))
  return app
}
