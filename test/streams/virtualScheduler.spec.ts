import { marbles } from 'rxjs-marbles/jest';
import { map } from 'rxjs';

describe('smoke', () => {
  it('marbles run', marbles(m => {
    const s = m.cold('-a-b|');
    m.expect(s.pipe(map(x => x.toUpperCase()))).toBeObservable('-A-B|');
  }));
});
