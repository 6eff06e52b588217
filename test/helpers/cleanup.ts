/**
 * Collects teardown steps as resources are made and runs them in reverse
 * order (last started, first stopped). One per test file:
 *
 *   const cleanup = new Cleanup();
 *   afterEach(() => cleanup.run());
 *
 * A failing step does not stop the others; the first error is rethrown once
 * all have run, so a broken teardown still fails the test.
 */
export class Cleanup {
  private steps: (() => unknown)[] = [];

  add(step: () => unknown): void {
    this.steps.push(step);
  }

  async run(): Promise<void> {
    const steps = this.steps.reverse();
    this.steps = [];
    let first: unknown;
    for (const step of steps) {
      try {
        await step();
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
  }
}
