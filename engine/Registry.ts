/**
 * Registry: the workflows and tasks this process can run, by name, and the graphs they compile
 * to, by hash. Tasks are looked up by name when a node runs (invariant 1): a run started by an
 * older deploy finds today's task of the same name, or parks.
 */
import { Context, Layer } from "effect"
import {
  type AnyWorkflow,
  type CompileDefaults,
  type Compiled,
  compileWorkflow,
  DefinitionError,
  type Graph,
  type IterationDefinition,
  type TaskDefinition,
} from "../dsl/index.ts"

export interface RegistryShape {
  readonly workflow: (name: string) => AnyWorkflow | undefined
  readonly task: (name: string) => TaskDefinition | undefined
  readonly iteration: (name: string) => IterationDefinition | undefined
  /** Graphs of the registered workflows, by definition hash. */
  readonly graph: (hash: string) => Graph | undefined
  readonly workflows: ReadonlyArray<AnyWorkflow>
  /** Compiles a workflow as this registry does: with the runtime's task defaults baked in. */
  readonly compile: (workflow: AnyWorkflow) => Compiled
}

export class Registry extends Context.Service<Registry, RegistryShape>()("taskgraph/Registry") {
  /**
   * A registry of `workflows`; two different tasks or workflows sharing a name is an error.
   * `defaults` (a runtime's) are baked into the graphs of tasks that do not set their own.
   */
  static readonly make = (workflows: ReadonlyArray<AnyWorkflow>, defaults?: CompileDefaults): RegistryShape => {
    const compile = (wf: AnyWorkflow) => compileWorkflow(wf, defaults)
    const byName = new Map<string, AnyWorkflow>()
    const tasks = new Map<string, TaskDefinition>()
    const iterations = new Map<string, IterationDefinition>()
    const graphs = new Map<string, Graph>()
    for (const wf of workflows) {
      const known = byName.get(wf.name)
      if (known !== undefined && known !== wf) {
        throw new DefinitionError({ message: `two different workflows are named "${wf.name}"` })
      }
      byName.set(wf.name, wf)
      const compiled = compile(wf)
      graphs.set(compiled.graph.hash, compiled.graph)
      for (const [name, def] of compiled.tasks) {
        const other = tasks.get(name)
        if (other !== undefined && other !== def) {
          throw new DefinitionError({ message: `two different tasks are named "${name}" (in workflow "${wf.name}")` })
        }
        tasks.set(name, def)
      }
      for (const [name, def] of compiled.iterations) {
        const other = iterations.get(name)
        if (other !== undefined && other !== def) {
          throw new DefinitionError({ message: `two different iterations are named "${name}" (in workflow "${wf.name}")` })
        }
        iterations.set(name, def)
      }
    }
    return {
      workflow: (name) => byName.get(name),
      task: (name) => tasks.get(name),
      iteration: (name) => iterations.get(name),
      graph: (hash) => graphs.get(hash),
      workflows: [...byName.values()],
      compile,
    }
  }

  static readonly layer = (workflows: ReadonlyArray<AnyWorkflow>, defaults?: CompileDefaults): Layer.Layer<Registry> =>
    Layer.sync(Registry, () => Registry.make(workflows, defaults))
}
