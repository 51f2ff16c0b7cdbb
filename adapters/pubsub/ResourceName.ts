/**
 * ResourceName: how this application's Pub/Sub resources are named. A topic or subscription id
 * is `<prefix>--<name>` (the ancestors' APP_NAME and delimiter), or the name alone without a
 * prefix; a prefix is letters, digits, '-' or '_', starts with a letter and never holds the
 * delimiter, so the name after the first `--` is unambiguous. Free of any Google client, so the
 * push route can read a subscription's name without loading gRPC.
 */

/** Between the application's prefix and a resource's own name. */
export const delimiter = "--"

const prefixPattern = /^[A-Za-z][A-Za-z0-9_-]{0,99}$/

/** Whether `prefix` can prefix this application's resource ids. */
export const isPrefix = (prefix: string): boolean => prefixPattern.test(prefix) && !prefix.includes(delimiter)

/** Why `prefix` cannot be one, for `<label>: …` messages. */
export const prefixRule = `prefix must be letters, digits, '-' or '_', starting with a letter, without "${delimiter}"`

/** The Pub/Sub id of the topic or subscription `name` under `prefix`. */
export const topicId = (name: string, prefix?: string): string => (prefix === undefined ? name : `${prefix}${delimiter}${name}`)

const subscriptionPattern = /^projects\/([^/]+)\/subscriptions\/([^/]+)$/

/** The id in a subscription's full name `projects/P/subscriptions/ID`, or undefined for anything else. */
export const subscriptionIdOf = (fullName: string): string | undefined => subscriptionPattern.exec(fullName)?.[2]

/**
 * Whether the Pub/Sub subscription id `id` is the subscriber subscription `name`: the name alone,
 * or under some prefix (which one is the deployment's: another application's subscriptions are
 * told apart by provisioning, not here).
 */
export const isSubscriptionFor = (id: string, name: string): boolean => {
  if (id === name) return true
  const suffix = `${delimiter}${name}`
  return id.length > suffix.length && id.endsWith(suffix) && isPrefix(id.slice(0, -suffix.length))
}
