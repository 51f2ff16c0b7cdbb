/**
 * What `effect/cli` needs to run the `taskgraph` command in Node without a platform package, and
 * how the command speaks: help as `usage: taskgraph … ` followed by its description, arguments and
 * options (a person reads it, and scripts grep its first line); requested help on stdout, help
 * after a mistake on stderr with the mistake first (`taskgraph runs show: …`), so a usage error
 * never pollutes a `--json` document on stdout. The exit code of a command line is kept in
 * `ExitCode`: the handlers set it (0 ok, 1 failure), src/cli.ts turns usage errors into 2.
 */
import { Context, Effect, FileSystem, Layer, Option, Path, Stdio, Terminal } from "effect"
import { CliConfig, CliError, CliOutput, GlobalFlag, type HelpDoc } from "effect/cli"
import { ChildProcessSpawner } from "effect/process"

/** The code `main` returns once the command line ran; a handler sets it (0 by default). */
export class ExitCode extends Context.Service<ExitCode, { code: number }>()("taskgraph/cli/ExitCode") {}

/**
 * A usage problem found by a handler (a missing setting, a configuration without the section the
 * command needs): shown like a parse error, with the command's help, exit code 2.
 */
export class UsageError extends Error {}

/** Fails as `effect/cli` fails a bad command line, so the runner shows the command's help with the problem. */
export const usageFailure = (commandPath: ReadonlyArray<string>, message: string): CliError.ShowHelp =>
  new CliError.ShowHelp({ commandPath: [...commandPath], errors: [new CliError.ValidationError({ message })] })

/**
 * A repeatable flag (`Flag.atLeast(0)`) is documented as required, like a required flag: its
 * description says "repeatable", which is how its usage tells the two apart.
 */
const isRepeatable = (flag: HelpDoc.FlagDoc): boolean => Option.getOrElse(flag.description, () => "").includes("repeatable")

/** A flag as the usage line shows it: `[--url URL]`, `--module PATH`, `[--json]`, `[--queue Q ...]`. */
const flagSynopsis = (flag: HelpDoc.FlagDoc): string => {
  const word = flag.type === "boolean" ? `--${flag.name}` : `--${flag.name} ${flag.type}`
  if (isRepeatable(flag)) return `[${word} ...]`
  return flag.required ? word : `[${word}]`
}

const argSynopsis = (arg: HelpDoc.ArgDoc): string => {
  const word = `${arg.name.toUpperCase()}${arg.variadic ? " ..." : ""}`
  return arg.required ? word : `[${word}]`
}

/** One line of synopsis: the command's words, its arguments, its own flags. */
const synopsis = (doc: HelpDoc.HelpDoc): string => {
  const path = doc.commandPath ?? [doc.usage.split(" ")[0] ?? "taskgraph"]
  if (doc.subcommands !== undefined && doc.subcommands.length > 0 && (doc.args ?? []).length === 0) {
    return [...path, "<command>", "[options]"].join(" ")
  }
  return [...path, ...(doc.args ?? []).map(argSynopsis), ...doc.flags.map(flagSynopsis)].join(" ")
}

const table = (rows: ReadonlyArray<readonly [string, string]>): Array<string> => {
  const width = Math.max(...rows.map(([left]) => left.length))
  return rows.map(([left, right]) => (right === "" ? `  ${left}` : `  ${left.padEnd(width)}  ${right}`))
}

const described = (description: Option.Option<string>): string => Option.getOrElse(description, () => "")

/** `usage: …`, the description, then the arguments, options and subcommands. */
const formatHelp = (doc: HelpDoc.HelpDoc): string => {
  const lines = [`usage: ${synopsis(doc)}`]
  if (doc.description !== "") lines.push("", doc.description)
  const args = doc.args ?? []
  if (args.length > 0) {
    lines.push("", "arguments:", ...table(args.map((arg) => [arg.name.toUpperCase(), described(arg.description)] as const)))
  }
  const flag = (f: HelpDoc.FlagDoc) => [[`--${f.name}${f.type === "boolean" ? "" : ` ${f.type}`}`, ...f.aliases].join(", "), described(f.description)] as const
  // the built-in --completions names its shells in its type: shorter as a word
  const globalFlag = (f: HelpDoc.FlagDoc) =>
    f.name === "completions" ? flag({ ...f, type: "SHELL", description: Option.some("print a completion script for bash, zsh, fish or powershell") }) : flag(f)
  const subcommands = (doc.subcommands ?? []).flatMap((group) => group.commands)
  if (subcommands.length > 0) {
    lines.push("", "commands:", ...table(subcommands.map((c) => [c.name, c.shortDescription ?? c.description.split("\n")[0] ?? ""] as const)))
  }
  if (doc.flags.length > 0) lines.push("", "options:", ...table(doc.flags.map(flag)))
  const global = doc.globalFlags ?? []
  if (global.length > 0) lines.push("", "global options:", ...table(global.map(globalFlag)))
  if (subcommands.length > 0) {
    lines.push("", `\`${[...(doc.commandPath ?? ["taskgraph"]), "<command>"].join(" ")} --help\` describes one command. Exit codes: 0 ok, 1 failure, 2 usage.`)
  }
  return lines.join("\n")
}

/** A parse or usage error in the project's words: unknown commands as the old CLI named them. */
const errorLine = (error: CliError.CliError): string => {
  if (error._tag === "UnknownSubcommand") {
    const words = [...(error.parent ?? []).slice(1), error.subcommand].join(" ")
    const hint = error.suggestions.length > 0 ? ` (did you mean ${error.suggestions.map((s) => `"${s}"`).join(" or ")}?)` : ""
    return `unknown command "${words}"${hint}`
  }
  return error.message
}

const presenter: CliOutput.Presenter = {
  present: (event) =>
    Effect.sync(() => {
      switch (event._tag) {
        case "Help":
          // asked for: stdout; shown because the command line named no command: stderr (exit 2)
          if (event.reason === "Requested") console.log(formatHelp(event.helpDoc))
          else console.error(formatHelp(event.helpDoc))
          return
        case "InvalidInvocation": {
          const unknownAtRoot = event.errors.some((e) => e._tag === "UnknownSubcommand")
          const where = unknownAtRoot ? "taskgraph" : event.commandPath.join(" ")
          console.error(`${event.errors.map((e) => `${where}: ${errorLine(e)}`).join("\n")}\n\n${formatHelp(event.helpDoc)}`)
          return
        }
        case "Version":
          console.log(`${event.name} ${event.version}`)
          return
      }
    }),
}

const unused = Effect.die("not used by the taskgraph command")

/**
 * The services `Command.runWith` asks for. The command reads no files through them and spawns
 * nothing: only the terminal's width matters (for nothing yet), so the rest are stand-ins.
 */
export const cliEnvironment = Layer.mergeAll(
  FileSystem.layerNoop({}),
  Path.layer,
  Stdio.layerTest({}),
  Layer.succeed(Terminal.Terminal)(Terminal.make({
    columns: Effect.sync(() => process.stdout.columns ?? 80),
    rows: Effect.sync(() => process.stdout.rows ?? 24),
    size: unused,
    readInput: unused,
    readLine: unused,
    display: (text) => Effect.sync(() => void process.stdout.write(text)),
  })),
  Layer.succeed(ChildProcessSpawner.ChildProcessSpawner)(ChildProcessSpawner.make(() => unused)),
  // --help, --version and --completions; no wizard (prompts) and no --log-level (nothing logs through Effect)
  CliConfig.layer({ builtIns: [GlobalFlag.Help, GlobalFlag.Version, GlobalFlag.Completions] }),
  CliOutput.layerPresenter(presenter),
)
