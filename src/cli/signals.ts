/**
 * The first SIGINT or SIGTERM, for the long-running commands (`emulator`, `worker`): listened to
 * from before they start anything, so a signal during start-up is a graceful stop too, and until
 * the command has stopped, so a second signal does not cut a graceful stop short.
 */
export interface SignalWait {
  /** Resolves with the first SIGINT or SIGTERM. */
  readonly received: Promise<NodeJS.Signals>
  /** Stops listening: call it once stopped. */
  readonly remove: () => void
}

export const untilSignal = (): SignalWait => {
  let remove = () => {}
  const received = new Promise<NodeJS.Signals>((resolve) => {
    const on = (signal: NodeJS.Signals) => resolve(signal)
    remove = () => {
      process.off("SIGINT", on)
      process.off("SIGTERM", on)
    }
    process.on("SIGINT", on)
    process.on("SIGTERM", on)
  })
  return { received, remove }
}
