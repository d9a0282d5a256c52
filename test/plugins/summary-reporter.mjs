/**
 * Prints `N passed, N failed, N skipped` on its own line at the end of a run, so CI can read the
 * result. A test file that failed to load counts as one failure.
 */
export function summaryReporter() {
  return {
    onTestRunFinished({ sessions }) {
      let passed = 0;
      let failed = 0;
      let skipped = 0;
      const walk = (suite) => {
        for (const test of suite.tests) {
          if (test.skipped) skipped += 1;
          else if (test.passed) passed += 1;
          else failed += 1;
        }
        for (const child of suite.suites) walk(child);
      };
      for (const session of sessions) {
        if (session.testResults) walk(session.testResults);
        const loadFailed = !session.passed && session.errors && session.errors.length > 0;
        if (loadFailed) failed += 1;
      }
      console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
    },
  };
}
