/**
 * Provision: this application's Pub/Sub topics and subscriptions, from its topics and subscribers
 * (the ancestors' `i3tasks_ensure_pubsub`, django-gcp's `create_pubsub_subscriptions`).
 * `planPubSub` compares what they ask for with what exists; `syncPubSub` creates what is missing
 * and updates subscriptions whose settings changed (by field mask). Running it twice changes
 * nothing the second time.
 *
 * Names are prefixed by the application (`<prefix>--<name>`, the ancestors' APP_NAME and `--`):
 * only resources with that prefix are this application's, and nothing else is ever touched.
 * A subscriber with a dead-letter policy gets its own dead-letter topic,
 * `<prefix>--<subscription>--dead`. Topics are never deleted (their messages would go with
 * them); an owned subscription no subscriber asks for any more is reported, and deleted only
 * with `prune`.
 *
 * `syncPubSubOnStart` is the same sync before a process starts (opt-in, the ancestors'
 * `run_queue_create_command_on_startup`: cloudTasksRuntime's `syncOnStart.pubsub`,
 * startPullWorker's `sync`), with a deadline, so an unreachable Pub/Sub refuses the start
 * rather than holding it for the client's minute of retries.
 */
import type { PubSub } from "@google-cloud/pubsub"
import { Data, Effect } from "effect"
import { type AnySubscriber, type AnyTopic, DefinitionError, type DurationInput, durationMillis } from "../../dsl/index.ts"
import { delimiter, isPrefix, prefixRule, topicId } from "./ResourceName.ts"
import type { PubSubSettings } from "./PubSubSpec.ts"

export class PubSubSyncError extends Data.TaggedError("PubSubSyncError")<{ readonly message: string; readonly cause?: unknown }> {}

export { PubSubSettings, SubscriptionSettings } from "./PubSubSpec.ts"

export type PubSubAction =
  | { readonly _tag: "CreateTopic"; readonly name: string }
  | { readonly _tag: "CreateSubscription"; readonly name: string; readonly settings: ReadonlyArray<string> }
  | { readonly _tag: "UpdateSubscription"; readonly name: string; readonly changes: ReadonlyArray<string>; readonly mask: ReadonlyArray<string> }
  | { readonly _tag: "DeleteSubscription"; readonly name: string }
  | { readonly _tag: "Unchanged"; readonly name: string }

export interface PubSubPlan {
  readonly actions: ReadonlyArray<PubSubAction>
  /** Owned subscriptions no subscriber asks for (deleted only with `prune`). */
  readonly stale: ReadonlyArray<string>
}

export interface PubSubSyncResult extends PubSubPlan {
  readonly applied: boolean
}

export interface PubSubCallOptions {
  /** Each Pub/Sub call's deadline, its retries included (a duration; a number is seconds); default: the client's (a minute for most calls). */
  readonly timeout?: DurationInput
}

export interface PubSubSyncOptions extends PubSubCallOptions {
  readonly dryRun?: boolean
  readonly prune?: boolean
}

interface DesiredSubscription {
  readonly name: string
  readonly topic: string
  readonly ackDeadlineSeconds: number
  readonly pushEndpoint: string | null
  readonly oidc: { readonly serviceAccountEmail: string; readonly audience: string } | null
  readonly deadLetter: { readonly topic: string; readonly maxDeliveryAttempts: number } | null
}

const failure = (message: string, cause?: unknown) => new PubSubSyncError({ message, ...(cause === undefined ? {} : { cause }) })

const desired = (settings: PubSubSettings, topics: ReadonlyArray<AnyTopic>, subscribers: ReadonlyArray<AnySubscriber>) => {
  const problems: Array<string> = []
  if (!isPrefix(settings.prefix)) {
    problems.push(`pubsub: ${prefixRule}, got ${JSON.stringify(settings.prefix)}`)
  }
  const full = (kind: "topics" | "subscriptions", id: string) => `projects/${settings.project}/${kind}/${topicId(id, settings.prefix)}`
  const topicNames = new Set<string>([...topics.map((t) => full("topics", t.name)), ...subscribers.map((s) => full("topics", s.topic.name))])
  const subscriptions: Array<DesiredSubscription> = []
  for (const subscriber of subscribers) {
    const own = settings.subscriptions?.[subscriber.subscription] ?? {}
    const at = `pubsub: subscription "${subscriber.subscription}"`
    const ack = own.ackDeadline ?? 60
    if (!Number.isInteger(ack) || ack < 10 || ack > 600) problems.push(`${at}: ackDeadline must be an integer number of seconds in [10, 600], got ${ack}`)
    if (own.push === true && settings.url === undefined) problems.push(`${at}: push needs pubsub.url (where the routes are mounted)`)
    if (own.push === true && settings.oidc === undefined) problems.push(`${at}: push needs pubsub.oidc (the service account its token names)`)
    const attempts = own.maxDeliveryAttempts
    if (attempts !== undefined && (!Number.isInteger(attempts) || attempts < 5 || attempts > 100)) {
      problems.push(`${at}: maxDeliveryAttempts must be an integer in [5, 100], got ${attempts}`)
    }
    const deadTopic = attempts === undefined ? null : full("topics", `${subscriber.subscription}${delimiter}dead`)
    if (deadTopic !== null) topicNames.add(deadTopic)
    const endpoint = own.push === true && settings.url !== undefined ? `${settings.url.replace(/\/+$/, "")}/pubsub/${encodeURIComponent(subscriber.subscription)}` : null
    subscriptions.push({
      name: full("subscriptions", subscriber.subscription),
      topic: full("topics", subscriber.topic.name),
      ackDeadlineSeconds: ack,
      pushEndpoint: endpoint,
      oidc: endpoint === null || settings.oidc === undefined ? null : { serviceAccountEmail: settings.oidc.serviceAccountEmail, audience: settings.oidc.audience ?? settings.url! },
      deadLetter: deadTopic === null ? null : { topic: deadTopic, maxDeliveryAttempts: attempts! },
    })
  }
  const seen = new Set<string>()
  for (const s of subscriptions) {
    if (seen.has(s.name)) problems.push(`pubsub: two subscribers for ${s.name}`)
    seen.add(s.name)
  }
  return { topics: [...topicNames].sort(), subscriptions, problems }
}

type SubscriptionMetadata = {
  readonly topic?: string | null
  readonly ackDeadlineSeconds?: number | null
  readonly pushConfig?: { readonly pushEndpoint?: string | null; readonly oidcToken?: { readonly serviceAccountEmail?: string | null; readonly audience?: string | null } | null } | null
  readonly deadLetterPolicy?: { readonly deadLetterTopic?: string | null; readonly maxDeliveryAttempts?: number | null } | null
}

/** The compared settings of a subscription, as lines `field = value`, by mask path. */
const settingsOf = (s: {
  readonly ackDeadlineSeconds: number | null | undefined
  readonly pushEndpoint: string | null | undefined
  readonly oidc: { readonly serviceAccountEmail?: string | null; readonly audience?: string | null } | null | undefined
  readonly deadLetter: { readonly topic?: string | null; readonly maxDeliveryAttempts?: number | null } | null | undefined
}): Map<string, string> =>
  new Map([
    ["ack_deadline_seconds", String(s.ackDeadlineSeconds ?? 10)],
    ["push_config", s.pushEndpoint ? `${s.pushEndpoint} (oidc ${s.oidc?.serviceAccountEmail ?? "-"}, audience ${s.oidc?.audience ?? "-"})` : "pull"],
    ["dead_letter_policy", s.deadLetter?.topic ? `${s.deadLetter.topic} after ${s.deadLetter.maxDeliveryAttempts ?? 5}` : "none"],
  ])

const fromMetadata = (m: SubscriptionMetadata) =>
  settingsOf({
    ackDeadlineSeconds: m.ackDeadlineSeconds,
    pushEndpoint: m.pushConfig?.pushEndpoint,
    oidc: m.pushConfig?.oidcToken,
    deadLetter: m.deadLetterPolicy?.deadLetterTopic ? { topic: m.deadLetterPolicy.deadLetterTopic, maxDeliveryAttempts: m.deadLetterPolicy.maxDeliveryAttempts ?? null } : null,
  })

// the client's error lists every retry's error after the last one: the last says it all
const tryRpc = <A>(what: string, f: () => Promise<A>) =>
  Effect.tryPromise({ try: f, catch: (cause) => failure(`${what}: ${(cause instanceof Error ? cause.message : String(cause)).split(" : Previous errors")[0]}`, cause) })

/** The `gaxOpts` of every call: the deadline, when one is given. */
const callOptions = (options: PubSubCallOptions): Effect.Effect<{ readonly timeout?: number }, PubSubSyncError> =>
  Effect.try({
    try: () => (options.timeout === undefined ? {} : { timeout: durationMillis("pubsub: timeout", options.timeout, { positive: true }) }),
    catch: (error) => failure(error instanceof DefinitionError ? error.message : String(error), error),
  })

/** Compares what the topics and subscribers ask for with what exists in the project. */
export const planPubSub = (
  client: PubSub,
  settings: PubSubSettings,
  topics: ReadonlyArray<AnyTopic>,
  subscribers: ReadonlyArray<AnySubscriber>,
  options: PubSubCallOptions = {},
): Effect.Effect<PubSubPlan, PubSubSyncError> =>
  Effect.gen(function*() {
    const want = desired(settings, topics, subscribers)
    if (want.problems.length > 0) return yield* failure(`the Pub/Sub configuration is invalid:\n  ${want.problems.join("\n  ")}`)
    const gaxOpts = yield* callOptions(options)
    const [existingTopics] = yield* tryRpc(`cannot list the topics of ${settings.project}`, () => client.getTopics({ gaxOpts }))
    const [existingSubscriptions] = yield* tryRpc(`cannot list the subscriptions of ${settings.project}`, () => client.getSubscriptions({ gaxOpts }))
    const haveTopics = new Set(existingTopics.map((t) => t.name))
    const haveSubscriptions = new Map(existingSubscriptions.map((s) => [s.name, s.metadata as SubscriptionMetadata | undefined]))
    const actions: Array<PubSubAction> = []
    for (const name of want.topics) if (!haveTopics.has(name)) actions.push({ _tag: "CreateTopic", name })
    for (const s of want.subscriptions) {
      const wanted = settingsOf({ ackDeadlineSeconds: s.ackDeadlineSeconds, pushEndpoint: s.pushEndpoint, oidc: s.oidc, deadLetter: s.deadLetter })
      const current = haveSubscriptions.get(s.name)
      if (!haveSubscriptions.has(s.name)) {
        actions.push({ _tag: "CreateSubscription", name: s.name, settings: [`topic = ${s.topic}`, ...[...wanted].map(([k, v]) => `${k} = ${v}`)] })
        continue
      }
      const have = fromMetadata(current ?? {})
      const changed = [...wanted].filter(([k, v]) => have.get(k) !== v)
      if (changed.length === 0) actions.push({ _tag: "Unchanged", name: s.name })
      else {
        actions.push({
          _tag: "UpdateSubscription",
          name: s.name,
          changes: changed.map(([k, v]) => `${k}: ${have.get(k)} → ${v}`),
          mask: changed.map(([k]) => k),
        })
      }
    }
    const prefix = `projects/${settings.project}/subscriptions/${settings.prefix}--`
    const wanted = new Set(want.subscriptions.map((s) => s.name))
    const stale = [...haveSubscriptions.keys()].filter((name) => name.startsWith(prefix) && !wanted.has(name)).sort()
    return { actions, stale }
  })

/**
 * Creates the missing topics and subscriptions and updates the changed subscriptions; with
 * `prune`, deletes the stale ones too; with `dryRun`, only plans.
 */
export const syncPubSub = (
  client: PubSub,
  settings: PubSubSettings,
  topics: ReadonlyArray<AnyTopic>,
  subscribers: ReadonlyArray<AnySubscriber>,
  options: PubSubSyncOptions = {},
): Effect.Effect<PubSubSyncResult, PubSubSyncError> =>
  Effect.gen(function*() {
    const plan = yield* planPubSub(client, settings, topics, subscribers, options)
    const actions = options.prune === true ? [...plan.actions, ...plan.stale.map((name) => ({ _tag: "DeleteSubscription", name }) as const)] : plan.actions
    if (options.dryRun === true) return { ...plan, actions, applied: false }
    const gaxOpts = yield* callOptions(options)
    const { subscriptions } = desired(settings, topics, subscribers)
    const message = (s: DesiredSubscription) => ({
      ackDeadlineSeconds: s.ackDeadlineSeconds,
      pushConfig: s.pushEndpoint === null ? {} : { pushEndpoint: s.pushEndpoint, ...(s.oidc === null ? {} : { oidcToken: s.oidc }) },
      deadLetterPolicy: s.deadLetter === null ? null : { deadLetterTopic: s.deadLetter.topic, maxDeliveryAttempts: s.deadLetter.maxDeliveryAttempts },
    })
    const short = (name: string) => name.slice(name.lastIndexOf("/") + 1)
    // topics first: a subscription (and its dead-letter policy) names them
    for (const action of actions) {
      if (action._tag === "CreateTopic") yield* tryRpc(`cannot create topic ${action.name}`, () => client.createTopic(short(action.name), gaxOpts))
    }
    for (const action of actions) {
      const s = subscriptions.find((d) => d.name === action.name)
      switch (action._tag) {
        case "CreateSubscription":
          yield* tryRpc(`cannot create subscription ${action.name}`, () => client.topic(short(s!.topic)).createSubscription(short(action.name), { ...message(s!), gaxOpts }))
          break
        case "UpdateSubscription":
          yield* tryRpc(`cannot update subscription ${action.name}`, () => client.subscription(short(action.name)).setMetadata(message(s!), gaxOpts))
          break
        case "DeleteSubscription":
          yield* tryRpc(`cannot delete subscription ${action.name}`, () => client.subscription(short(action.name)).delete(gaxOpts))
          break
        default:
          break
      }
    }
    return { ...plan, actions, applied: true }
  })

/** The plan as lines for a terminal: `+` create, `~` update, `-` delete, `=` unchanged, `!` stale. */
export const formatPubSubPlan = (result: PubSubPlan & { readonly applied?: boolean }): Array<string> => {
  const dry = result.applied === false
  const lines: Array<string> = ["Pub/Sub:"]
  for (const action of result.actions) {
    switch (action._tag) {
      case "CreateTopic":
        lines.push(`  + topic ${action.name}: ${dry ? "would create" : "created"}`)
        break
      case "CreateSubscription":
        lines.push(`  + subscription ${action.name}: ${dry ? "would create" : "created"}`)
        for (const s of action.settings) lines.push(`      ${s}`)
        break
      case "UpdateSubscription":
        lines.push(`  ~ subscription ${action.name}: ${dry ? "would update" : "updated"}`)
        for (const c of action.changes) lines.push(`      ${c}`)
        break
      case "DeleteSubscription":
        lines.push(`  - subscription ${action.name}: ${dry ? "would delete" : "deleted"}`)
        break
      case "Unchanged":
        lines.push(`  = subscription ${action.name}: unchanged`)
        break
    }
  }
  const deleting = new Set(result.actions.filter((a) => a._tag === "DeleteSubscription").map((a) => a.name))
  for (const name of result.stale) if (!deleting.has(name)) lines.push(`  ! subscription ${name}: no subscriber asks for it (kept; --prune deletes it)`)
  const changed = result.actions.filter((a) => a._tag !== "Unchanged").length
  lines.push(changed === 0 ? "no changes" : dry ? `dry run: ${changed} change(s); nothing was changed` : `${changed} change(s) applied`)
  return lines
}

/** What a start-up sync takes beside the client: the `pubsub` settings, a deadline, and topics no subscriber names. */
export interface PubSubStartSync extends PubSubSettings, PubSubCallOptions {
  /** Topics to create besides those the subscribers name (topics this process only publishes to). */
  readonly topics?: ReadonlyArray<AnyTopic>
}

/** The start-up sync's deadline for each call when none is given: well within a platform's start-up probe. */
const startTimeoutSeconds = 30

/**
 * Syncs `subscribers` (the topics they name, and `sync.topics`) before `starting` starts: as
 * `syncPubSub`, never pruning, each call within `sync.timeout` (default 30 seconds). What it did
 * is logged. `all` says whether `subscribers` are all the process has: only then is a
 * subscription no one asks for reported as stale. Rejects with a `PubSubSyncError` that names
 * `starting`, so the start is refused with the reason.
 */
export const syncPubSubOnStart = async (
  starting: string,
  client: PubSub,
  sync: PubSubStartSync,
  subscribers: ReadonlyArray<AnySubscriber>,
  { all }: { readonly all: boolean },
): Promise<PubSubSyncResult> => {
  const { topics = [], timeout = startTimeoutSeconds, ...settings } = sync
  const result = await Effect.runPromise(
    syncPubSub(client, settings, topics, subscribers, { timeout }).pipe(
      Effect.mapError((error) => failure(`${starting}: Pub/Sub provisioning failed, so nothing was started: ${error.message}`, error.cause ?? error)),
    ),
  )
  console.info(`taskgraph: ${formatPubSubPlan(all ? result : { ...result, stale: [] }).join("\n  ")}`)
  return result
}
