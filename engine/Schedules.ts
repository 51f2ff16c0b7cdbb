/**
 * Schedules: the periodic schedules this process fires or answers beats for, by name. The
 * runtime provides it from its `schedules` option (each schedule's workflow is registered with
 * the runtime's workflows); the beat route looks a fired schedule up here, and the embedded
 * worker's leader fires the ones due.
 */
import { Context, Layer } from "effect"
import { type AnyPeriodic, DefinitionError } from "../dsl/index.ts"

export interface SchedulesShape {
  readonly all: ReadonlyArray<AnyPeriodic>
  readonly get: (name: string) => AnyPeriodic | undefined
}

export class Schedules extends Context.Service<Schedules, SchedulesShape>()("taskgraph/Schedules") {
  /** The schedules `list`; two schedules with one name is a `DefinitionError`. */
  static readonly make = (list: ReadonlyArray<AnyPeriodic>): SchedulesShape => {
    const byName = new Map<string, AnyPeriodic>()
    for (const schedule of list) {
      if (schedule?._tag !== "Periodic") throw new DefinitionError({ message: "schedules must be made with periodic(…)" })
      if (byName.has(schedule.name)) throw new DefinitionError({ message: `two schedules are named "${schedule.name}"` })
      byName.set(schedule.name, schedule)
    }
    return { all: [...list], get: (name) => byName.get(name) }
  }

  static readonly layer = (list: ReadonlyArray<AnyPeriodic>): Layer.Layer<Schedules> => Layer.succeed(Schedules, Schedules.make(list))

  /** No schedules. */
  static readonly none: Layer.Layer<Schedules> = Layer.succeed(Schedules, Schedules.make([]))
}
