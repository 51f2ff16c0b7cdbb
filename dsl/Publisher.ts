/**
 * Publisher: publishing as a step of a run (the ancestors' `PublisherTask.asap()` and
 * `ModelPublisherTask`). A publish that is a step goes through the dispatcher like any step: it
 * is stored first, so a publish started inside the caller's transaction is sent only if that
 * transaction commits, and a crash or a refused publish is retried with the task's policy. Its
 * message id (`messageIdAttribute`) is the run and node, the same on every try, so a message
 * published again after a crash is recognised downstream as the same message.
 *
 * ```ts
 * const orders = topic("orders", Order)
 *
 * // a step: the previous step's output is the message
 * const checkout = workflow("checkout", chain(placeOrder).then(publisher(orders)))
 *
 * // on its own, later: `request` is { message, attributes? }
 * await tg.start(publishWorkflow(orders), { message: order }, { em })   // sent once em commits
 *
 * // a MikroORM entity, through builders of the message and its attributes
 * const orderEvents = modelPublisher(orders, {
 *   content: (order: OrderEntity) => ({ id: order.id, total: order.total }),
 *   attributes: (order, event) => ({ event: event ?? "saved" }),
 * })
 * yield* orderEvents.publish(entity, { event: "created" })                    // now
 * await tg.start(orderEvents.workflow, orderEvents.request(entity, "created"), { em })  // after em commits
 * ```
 *
 * Each publishing task and workflow runs where the runtime provides a `TopicPublisher` (the
 * Pub/Sub adapter's `PubSubPublisher.layer(…)` in its `services`), and its workflow must be
 * registered (`workflows`) like any other.
 */
import { Effect, Schema } from "effect"
import { chain } from "./Chain.ts"
import { DefinitionError } from "./DefinitionError.ts"
import { attributesProblem, MessageError, publish, type Published, type PublishFailed, type Topic, type TopicPublisher } from "./Topic.ts"
import { checkName, type RetryOptions, type Task, task } from "./Task.ts"
import { TaskContext } from "./TaskContext.ts"
import type { DurationInput } from "./Time.ts"
import { InvalidInput, type RunRef, type StartError, type StartOptions, workflow, type Workflow, type WorkflowStarter } from "./Workflow.ts"

/** What a publish step answers: our message id and Pub/Sub's. */
export const PublishedSchema = Schema.Struct({ id: Schema.String, messageId: Schema.String })

/** A message to publish later, with its attributes: the input of `publishWorkflow(topic)`. */
export interface PublishRequest<A> {
  readonly message: A
  readonly attributes?: Readonly<Record<string, string>>
}

/** The options of a publishing task: its name (default `publish:<topic>`), retry, timeout and queue. */
export interface PublisherOptions<A> {
  /** The task's name (default `publish:<topic>`; needed when `attributes` is given, or the topic's id is no task name). */
  readonly name?: string
  /** The message's attributes, from the message (ours and the propagated headers are added). */
  readonly attributes?: (message: A) => Readonly<Record<string, string>>
  readonly retry?: RetryOptions
  readonly timeout?: DurationInput
  readonly queue?: string
}

const defaultName = (kind: string, topic: Topic<any>): string => {
  const name = `${kind}:${topic.name}`
  if (!/^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$/.test(name)) {
    throw new DefinitionError({ message: `${kind}(topic "${topic.name}"): the topic's id is not a task name; give options.name` })
  }
  return name
}

/** The message id of a publishing step: its run and node, the same on every try. */
const stepMessageId: Effect.Effect<string, never, TaskContext> = Effect.gen(function*() {
  const context = yield* TaskContext
  return `${context.run}:${context.node}`
})

/** A publishing step's send: `message` on `topic` under the step's message id. */
const publishStep = <A>(topic: Topic<A>, message: A, attributes: Readonly<Record<string, string>> | undefined) =>
  Effect.flatMap(stepMessageId, (id) => publish(topic, message, { id, ...(attributes === undefined ? {} : { attributes }) }))

/** Attributes a builder made, checked (a `MessageError` naming the rule is thrown). */
const checkAttributes = (topic: Topic<any>, attributes: Readonly<Record<string, string>>): Readonly<Record<string, string>> => {
  const problem = attributesProblem(attributes)
  if (problem !== undefined) throw new MessageError({ topic: topic.name, reason: "schema", message: `topic "${topic.name}": ${problem}` })
  return attributes
}

const plainPublishers = new WeakMap<Topic<any>, Task<string, any, Published, MessageError | PublishFailed, TopicPublisher | TaskContext>>()
const requestWorkflows = new WeakMap<Topic<any>, Workflow<string, PublishRequest<any>, Published, TopicPublisher | TaskContext>>()

/**
 * A task that publishes its input on `topic` (a step: `chain(a).then(publisher(orders))`). The
 * same topic without options gives the same task every time, so several workflows may use it.
 */
export const publisher = <A>(
  topic: Topic<A>,
  options: PublisherOptions<A> = {},
): Task<string, A, Published, MessageError | PublishFailed, TopicPublisher | TaskContext> => {
  const plain = options.name === undefined && options.attributes === undefined && options.retry === undefined &&
    options.timeout === undefined && options.queue === undefined
  const known = plain ? plainPublishers.get(topic) : undefined
  if (known !== undefined) return known
  if (options.attributes !== undefined && options.name === undefined) {
    throw new DefinitionError({ message: `publisher(topic "${topic.name}"): a publisher with attributes needs its own options.name` })
  }
  const name = options.name === undefined ? defaultName("publish", topic) : checkName("task", options.name)
  const made = task(name, {
    input: topic.schema as Schema.Codec<A, any, never, never>,
    output: PublishedSchema,
    ...(options.retry === undefined ? {} : { retry: options.retry }),
    ...(options.timeout === undefined ? {} : { timeout: options.timeout }),
    ...(options.queue === undefined ? {} : { queue: options.queue }),
    // publish() checks the attributes the builder makes (a MessageError: the try fails, and is retried by the policy)
    run: (message: A) => publishStep(topic, message, options.attributes?.(message)),
  })
  if (plain) plainPublishers.set(topic, made)
  return made
}

/**
 * A one-step workflow that publishes a `PublishRequest` on `topic` (named `publish:<topic>`):
 * start it inside a transaction and the message is sent once that commits, never if it rolls back.
 */
export const publishWorkflow = <A>(topic: Topic<A>): Workflow<string, PublishRequest<A>, Published, TopicPublisher | TaskContext> => {
  const known = requestWorkflows.get(topic)
  if (known !== undefined) return known as Workflow<string, PublishRequest<A>, Published, TopicPublisher | TaskContext>
  const name = defaultName("publish", topic)
  const Request = Schema.Struct({
    message: topic.schema as Schema.Codec<A, any, never, never>,
    attributes: Schema.optional(Schema.Record(Schema.String, Schema.String)),
  })
  const step = task(`${name}:request`, {
    input: Request,
    output: PublishedSchema,
    run: (request) => publishStep(topic, request.message as A, request.attributes),
  })
  const made = workflow(name, chain(step)) as unknown as Workflow<string, PublishRequest<A>, Published, TopicPublisher | TaskContext>
  requestWorkflows.set(topic, made)
  return made
}

/** Builders of an entity's message and attributes (the ancestors' `build_message_content` / `build_message_attributes`). */
export interface ModelPublisherOptions<E, A> {
  /** The message for `entity` (`event`: what happened to it, as the caller says). */
  readonly content: (entity: E, event: string | undefined) => A
  /** The message's attributes for `entity` (ours and the propagated headers are added). */
  readonly attributes?: (entity: E, event: string | undefined) => Readonly<Record<string, string>>
}

export interface ModelPublisher<E, A> {
  readonly topic: Topic<A>
  /** The message and attributes the builders make of `entity`: what `workflow` takes (throws a `MessageError` for attributes Pub/Sub refuses). */
  readonly request: (entity: E, event?: string) => PublishRequest<A>
  /** Publishes `entity` now (the ancestors' `.sync()`); `id` chooses our message id. */
  readonly publish: (entity: E, options?: { readonly event?: string; readonly id?: string }) => Effect.Effect<Published, MessageError | PublishFailed, TopicPublisher>
  /** The workflow that publishes a request later: `publishWorkflow(topic)`; register it in the runtime's workflows. */
  readonly workflow: Workflow<string, PublishRequest<A>, Published, TopicPublisher | TaskContext>
  /**
   * Starts `workflow` for `entity` (the ancestors' `.asap()`): with `em` (or inside a transaction
   * of the runtime's ORM) the message is sent only once that transaction commits.
   */
  readonly publishLater: (entity: E, options?: StartOptions & { readonly event?: string }) => Effect.Effect<RunRef, StartError, WorkflowStarter>
}

/**
 * Publishes entities (a MikroORM entity, or any value) on `topic` through `content` and
 * `attributes` builders, now or once the surrounding transaction commits. The builders run when
 * called, on the entity as it is then: the message is a snapshot, not a reference to reload.
 */
export const modelPublisher = <E, A>(topic: Topic<A>, options: ModelPublisherOptions<E, A>): ModelPublisher<E, A> => {
  if (typeof options?.content !== "function") throw new DefinitionError({ message: `modelPublisher(topic "${topic.name}"): content must be a function` })
  const request = (entity: E, event?: string): PublishRequest<A> => {
    const message = options.content(entity, event)
    const attributes = options.attributes?.(entity, event)
    return attributes === undefined ? { message } : { message, attributes: checkAttributes(topic, attributes) }
  }
  const publishing = publishWorkflow(topic)
  const built = (entity: E, event: string | undefined): Effect.Effect<PublishRequest<A>, MessageError> =>
    Effect.try({
      try: () => request(entity, event),
      catch: (error) => error instanceof MessageError ? error : new MessageError({ topic: topic.name, reason: "schema", message: `topic "${topic.name}": ${String(error)}` }),
    })
  return {
    topic,
    request,
    workflow: publishing,
    publish: (entity, publishOptions = {}) =>
      Effect.flatMap(built(entity, publishOptions.event), (made) =>
        publish(topic, made.message, {
          ...(made.attributes === undefined ? {} : { attributes: made.attributes }),
          ...(publishOptions.id === undefined ? {} : { id: publishOptions.id }),
        })),
    publishLater: (entity, startOptions = {}) => {
      const { event, ...rest } = startOptions as StartOptions & { readonly event?: string }
      // attributes Pub/Sub would refuse are refused now, nothing written, not on every try later
      return Effect.flatMap(
        Effect.mapError(built(entity, event), (e) => new InvalidInput({ workflow: publishing.name, message: e.message })),
        (made) => publishing.start(made, rest as StartOptions),
      )
    },
  }
}
