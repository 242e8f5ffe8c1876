/** The CowlabError a call throws (the test fails when it throws something else, or nothing). */
import { expect } from 'vitest';

import { CowlabError } from '../../src/errors.js';

export function thrownCowlabError(run: () => unknown): CowlabError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(CowlabError);
    return err as CowlabError;
  }
  throw new Error('expected a CowlabError, but the call returned');
}
