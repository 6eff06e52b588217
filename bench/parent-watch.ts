/**
 * Preloaded (`node --import`) into every process the bench starts, which the
 * bench spawns with an IPC channel. When the bench goes away — finished,
 * crashed or SIGKILLed — the channel closes and this process ends too, so a
 * bench run never leaves servers or agents behind.
 *
 * SIGTERM first (so `--cpu-prof` profiles and the server's drain run), and a
 * hard exit shortly after in case the process does not stop by itself.
 */
if (process.channel) {
  process.channel.unref();
  process.on('disconnect', () => {
    const t = setTimeout(() => process.exit(1), 5_000);
    t.unref();
    process.kill(process.pid, 'SIGTERM');
  });
}

export {};
