/**
 * True if `p` settles (either way) within `ms`, false if the time ran out
 * first. The timer is cleared either way, so a drain that finishes early
 * leaves nothing holding the process open. Both drains (the server's and
 * the agent's) wait on it.
 */
export async function settleWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([
      p.then(
        () => true as const,
        () => true as const,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
