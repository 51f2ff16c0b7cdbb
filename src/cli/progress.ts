/**
 * Progress for the sync commands: each change printed as the call that makes it returns, before
 * the summary, so a long sync shows where it is, and one interrupted halfway shows what it did.
 * The sync functions take a client and report only at the end; the client they are given is
 * this one's view of the real client, which announces each creating, updating or deleting call
 * once it succeeded (reads pass through untouched).
 */

type Announce = (line: string) => void

/** What a call that changed something announces, from its arguments. */
type Announcements = Readonly<Record<string, (args: ReadonlyArray<any>) => string | undefined>>

/** `target` with the methods named in `announce` announcing their change once their promise resolves; every other member as it is. */
const announcing = <T extends object>(target: T, announcements: Announcements, announce: Announce, wrap: Readonly<Record<string, (value: any) => unknown>> = {}): T =>
  new Proxy(target, {
    get(object, key) {
      const value: unknown = Reflect.get(object, key, object)
      if (typeof value !== "function" || typeof key !== "string") return value
      const method = value as (...args: ReadonlyArray<unknown>) => unknown
      const line = announcements[key]
      const wrapResult = wrap[key]
      if (line !== undefined) {
        return async (...args: ReadonlyArray<unknown>) => {
          const result = await method.apply(object, [...args])
          const text = line(args)
          if (text !== undefined) announce(text)
          return result
        }
      }
      if (wrapResult !== undefined) return (...args: ReadonlyArray<unknown>) => wrapResult(method.apply(object, [...args]))
      return method.bind(object)
    },
  })

/** A Cloud Tasks client whose queue changes are announced. */
export const announcingQueues = <T extends object>(client: T, announce: Announce): T =>
  announcing(client, {
    createQueue: ([request]) => `created queue ${request?.queue?.name ?? "?"}`,
    updateQueue: ([request]) => `updated queue ${request?.queue?.name ?? "?"}`,
  }, announce)

/** A Cloud Scheduler client whose job changes are announced. */
export const announcingJobs = <T extends object>(client: T, announce: Announce): T =>
  announcing(client, {
    createJob: ([request]) => `created job ${request?.job?.name ?? "?"}`,
    updateJob: ([request]) => `updated job ${request?.job?.name ?? "?"}`,
    deleteJob: ([request]) => `deleted job ${request?.name ?? "?"}`,
  }, announce)

/** A PubSub client whose topic and subscription changes are announced (subscriptions are changed through `topic()` and `subscription()`). */
export const announcingPubSub = <T extends object>(client: T, project: string, announce: Announce): T => {
  const full = (kind: "topics" | "subscriptions", name: unknown) => {
    const id = String(name)
    return id.startsWith("projects/") ? id : `projects/${project}/${kind}/${id}`
  }
  return announcing(client, { createTopic: ([name]) => `created topic ${full("topics", name)}` }, announce, {
    topic: (topic: object) => announcing(topic, { createSubscription: ([name]) => `created subscription ${full("subscriptions", name)}` }, announce),
    subscription: (subscription: { readonly name?: string }) =>
      announcing(subscription, {
        setMetadata: () => `updated subscription ${subscription.name ?? "?"}`,
        delete: () => `deleted subscription ${subscription.name ?? "?"}`,
      }, announce),
  })
}
