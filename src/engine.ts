/**
 * `taskgraph/engine`: the engine and its ports as Effect services, for Effect applications and
 * for writing another store or dispatcher. `createRuntime` wires these for you; reach here when
 * you compose the Layers yourself.
 */
/** Advances a stored graph one step per callback; its configuration. */
export { deduplicationKey, Engine, EngineConfig, type EngineConfigShape, type EngineShape } from "../engine/Engine.ts"
/** The outcome of one advance: ran, duplicate, stale, revoked, retry scheduled, failed, parked… */
export { Outcome } from "../engine/Outcome.ts"
/** The callback message (`{v, run, node, attempt}`) and its JSON codec. */
export { Callback, CallbackJson, CallbackVersion } from "../engine/Callback.ts"
/** Turns "node N is ready" into a callback. */
export { Dispatcher } from "../engine/Dispatcher.ts"
/** Eager mode's dispatcher: a run made ready is drained to its end in the dispatching fiber. */
export { EagerDispatcher } from "../engine/Inline.ts"
/** One task now, in-process, with its schema checks (what `runtime.run` does), as an Effect. */
export { runTaskNow, type RunNowOptions } from "../engine/RunNow.ts"
/** Where runs, nodes and attempts live; its error. */
export { StoreError, WorkflowStore } from "../engine/WorkflowStore.ts"
/** The workflows (and so the tasks) this process knows. */
export { Registry } from "../engine/Registry.ts"
/** The services the tasks' Effects need. */
export { TaskServices } from "../engine/TaskServices.ts"
/** Re-dispatches ready nodes whose dispatch was lost and reclaims expired leases. */
export { sweep, sweepOnce, type SweepOptions } from "../engine/Sweeper.ts"
/** A run with every node's state, as an Effect. */
export { describeRun } from "../engine/RunView.ts"
/** The port iterations read rows through. */
export { type KeyRange, type Page, type Plan, type RowKey, RowSource, RowSourceError } from "../engine/RowSource.ts"
/** The periodic schedules of a process, the store of their fires and leases, and the embedded beat that fires them. */
export { Schedules, type SchedulesShape } from "../engine/Schedules.ts"
export { type FireRecord, type HeldSchedule, ScheduleStore, type ScheduleStoreShape } from "../engine/ScheduleStore.ts"
export { beat, type BeatResult, type FirePlan, type FireSchedulesOptions, type FireStart, planFires, runBeat, startFire } from "../engine/Beat.ts"
/**
 * Header propagation (`traceparent` …): the headers of the work in progress, which a start or a
 * publish carries on (provide it to set them from another framework's request), the settings,
 * and picking them out of a request's headers.
 */
export {
  CurrentHeaders,
  defaultHeaderAttributePrefix,
  defaultPropagatedHeaders,
  HeaderPropagation,
  type HeaderPropagationShape,
  pickHeaders,
} from "../dsl/Headers.ts"
/** Tracing: whether starts and steps are spans, and the W3C `traceparent` of a span. */
export { parentFromTraceparent, traceparentOf, TracingEnabled } from "../engine/Tracing.ts"
/** The run history's read port (lists, counts, one run in detail, one value in full) and what it reads and answers. */
export {
  type AttemptDetail,
  type FullValue,
  type GetOptions,
  InvalidHistoryQuery,
  type ListQuery,
  type NodeDetail,
  type Progress,
  type RunCounts,
  type RunDetail,
  type RunFilter,
  RunHistory,
  type RunHistoryShape,
  type RunPage,
  type RunSummary,
  type StoredValue,
  type TimelineEntry,
  type ValueSide,
} from "../engine/History.ts"
