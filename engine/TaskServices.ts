/**
 * TaskServices: the Effect services that task bodies may require, supplied by the application
 * when it builds its runtime (e.g. a mailer, a database client).
 */
import { Context, Effect, Layer } from "effect"

export class TaskServices extends Context.Service<TaskServices, Context.Context<unknown>>()("taskgraph/TaskServices") {
  static readonly empty: Layer.Layer<TaskServices> = Layer.succeed(TaskServices, Context.empty() as Context.Context<unknown>)

  /** Builds the services tasks need from the application's layer. */
  static readonly fromLayer = <R, E>(layer: Layer.Layer<R, E>): Layer.Layer<TaskServices, E> =>
    Layer.effect(TaskServices, Effect.map(Effect.context<R>(), (ctx) => ctx as Context.Context<unknown>)).pipe(Layer.provide(layer))
}
