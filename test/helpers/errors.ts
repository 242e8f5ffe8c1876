/** The CowlabError a call throws (the test fails when it throws something else, or nothing). */
import { expect } from 'vitest';

import { CowlabError } from '../../src/errors.js';

/** The CowlabError a promise rejects with (the test fails when it rejects with something else,
 *  or resolves). */
export async function rejection(p: Promise<unknown>): Promise<CowlabError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(CowlabError);
    return err as CowlabError;
  }
  throw new Error('expected a CowlabError, but the promise resolved');
}

export function thrownCowlabError(run: () => unknown): CowlabError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(CowlabError);
    return err as CowlabError;
  }
  throw new Error('expected a CowlabError, but the call returned');
}
