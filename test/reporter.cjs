// mocha's spec reporter, plus a closing "N passed, N failed" line that CI tools read as the test count.
const { reporters: { Spec } } = require('mocha');

class SpecWithCount extends Spec {
  constructor(runner, options) {
    super(runner, options);
    runner.once('end', () => {
      const { passes, failures, pending } = runner.stats;
      console.log(`${passes} passed, ${failures} failed${pending ? `, ${pending} skipped` : ''}`);
    });
  }
}

module.exports = SpecWithCount;
