import { sql } from 'kysely';
import { startApiOnPglite, type ApiOnPglite } from '../test/support/api-on-pglite';

/**
 * GET /api/v1/gitspaces a page at a time (issue 14): filters, keyset pages that hold still while gitspaces are added,
 * cursors that cannot be forged into anything but a 400, and a member who never sees another's gitspaces whatever
 * cursor they send. The REST API alone on PGlite.
 */
describe('GET /gitspaces, a page at a time', () => {
  let api: ApiOnPglite;
  let ada: { id: string; token: string };
  let bob: { id: string; token: string };

  beforeAll(async () => {
    api = await startApiOnPglite();
    ada = await api.member('ada');
    bob = await api.member('bob');
  });
  afterAll(async () => {
    await api?.close();
  });

  interface Page {
    status: number;
    items: { id: string; name: string; state: string; owner: string }[];
    nextCursor?: string;
    error?: { code: string; message: string; fields?: { path: string; message: string }[] };
  }
  const list = async (token: string, query = ''): Promise<Page> => {
    const { status, body } = await api.call('GET', `/gitspaces${query}`, token);
    return { status, ...body };
  };

  /** Inserts gitspaces of `ownerId` as rows, each at the given creation time (all at once: one statement). */
  const insertAt = async (ownerId: string, rows: { id: string; createdAt: string; state?: string }[]) => {
    await sql`insert into gitspaces (id, name, owner_id, repository_url, infrastructure_id, machine_id, ide, state, created_at)
      values ${sql.join(
        rows.map(
          (row) =>
            sql`(${row.id}, ${row.id}, ${ownerId}, 'https://git.example.test/r.git', 'local', 'local-default', 'terminal', ${row.state ?? 'stopped'}, ${row.createdAt}::timestamptz)`,
        ),
      )}`.execute(api.db);
  };

  /** Every page from the first (or from `start`), following nextCursor; `between` runs after each page. */
  const allPages = async (token: string, query: string, between?: () => Promise<void>, start?: string) => {
    const ids: string[] = [];
    let cursor: string | undefined = start;
    let pages = 0;
    do {
      const page = await list(token, `?${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(page.status).toBe(200);
      ids.push(...page.items.map((item) => item.id));
      cursor = page.nextCursor;
      pages++;
      await between?.();
    } while (cursor && pages < 100);
    return { ids, pages };
  };

  it('gives every gitspace once, newest first, while new ones are created between pages', async () => {
    const carol = await api.member('carol');
    const existing: string[] = [];
    for (let i = 0; i < 12; i++) existing.push(await api.createGitspace(carol.token, `page-${i}`));
    // Seven created in one statement share their creation time: only the id tells them apart, and a page ends inside.
    const tied = Array.from({ length: 7 }, (_, i) => ({ id: `gs-tied-${i}`, createdAt: '2026-01-01T00:00:00.5Z' }));
    // Five a microsecond apart: the same millisecond, which a position kept as a JavaScript Date would blur.
    const close = Array.from({ length: 5 }, (_, i) => ({
      id: `gs-close-${4 - i}`,
      createdAt: `2026-01-01T00:00:00.12345${i}Z`,
    }));
    await insertAt(carol.id, tied);
    await insertAt(carol.id, close);
    const everything = [...existing, ...tied.map((t) => t.id), ...close.map((c) => c.id)];

    let added = 0;
    const { ids, pages } = await allPages(carol.token, 'limit=3', async () => {
      await api.createGitspace(carol.token, `added-${added++}`);
    });
    expect(pages).toBe(Math.ceil(everything.length / 3));
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual([...everything].sort());
    // Newest first: the ones made through the API, then the tied ones by id descending, then the close ones.
    expect(ids).toEqual([
      ...[...existing].reverse(),
      ...tied
        .map((t) => t.id)
        .sort()
        .reverse(),
      ...close.map((c) => c.id).reverse(),
    ]);

    // The ones added meanwhile are newer than the first page: a new listing starts with them.
    const first = await list(carol.token, `?limit=${added}`);
    expect(first.items.map((item) => item.name)).toEqual(
      Array.from({ length: added }, (_, i) => `added-${added - 1 - i}`),
    );
  });

  it('answers a caller who sends nothing with the first 50 and a cursor to the rest', async () => {
    const dave = await api.member('dave');
    const rows = Array.from({ length: 53 }, (_, i) => ({
      id: `gs-dave-${String(i).padStart(2, '0')}`,
      createdAt: `2026-02-01T00:00:${String(i).padStart(2, '0')}Z`,
    }));
    await insertAt(dave.id, rows);
    const first = await list(dave.token);
    expect(first.items).toHaveLength(50);
    expect(first.items[0]!.id).toBe('gs-dave-52');
    expect(first.nextCursor).toEqual(expect.any(String));
    const rest = await list(dave.token, `?cursor=${encodeURIComponent(first.nextCursor!)}`);
    expect(rest.items.map((item) => item.id)).toEqual(['gs-dave-02', 'gs-dave-01', 'gs-dave-00']);
    expect(rest).not.toHaveProperty('nextCursor');
    // A last page that is exactly full says so too: no cursor to an empty page.
    expect(await list(dave.token, '?limit=53')).not.toHaveProperty('nextCursor');
  });

  it('filters by state, a comma-separated list', async () => {
    const erin = await api.member('erin');
    await insertAt(erin.id, [
      { id: 'gs-erin-run', createdAt: '2026-03-01T00:00:01Z', state: 'running' },
      { id: 'gs-erin-err', createdAt: '2026-03-01T00:00:02Z', state: 'error' },
      { id: 'gs-erin-del', createdAt: '2026-03-01T00:00:03Z', state: 'deleted' },
      { id: 'gs-erin-stop', createdAt: '2026-03-01T00:00:04Z', state: 'stopped' },
    ]);
    const ids = async (query: string) => (await list(erin.token, query)).items.map((item) => item.id);
    expect(await ids('?state=running')).toEqual(['gs-erin-run']);
    expect(await ids('?state=error,running')).toEqual(['gs-erin-err', 'gs-erin-run']);
    expect(await ids('?state=running,running')).toEqual(['gs-erin-run']);
    expect(await ids('?state=stopped,starting,running,stopping,deleting,error')).toEqual([
      'gs-erin-stop',
      'gs-erin-err',
      'gs-erin-run',
    ]);
    expect(await ids('')).toEqual(['gs-erin-stop', 'gs-erin-del', 'gs-erin-err', 'gs-erin-run']);
    // Filter and cursor together: the next page of the same filter.
    const page = await list(erin.token, '?state=running,error,stopped&limit=2');
    expect(page.items.map((item) => item.id)).toEqual(['gs-erin-stop', 'gs-erin-err']);
    const next = await list(erin.token, `?state=running,error,stopped&limit=2&cursor=${page.nextCursor}`);
    expect(next.items.map((item) => item.id)).toEqual(['gs-erin-run']);
  });

  it('answers 400 naming the query field for a state, limit or parameter it does not know', async () => {
    const cases: [string, string][] = [
      ['?state=sleeping', 'query.state'],
      ['?state=running,', 'query.state'],
      ['?state=', 'query.state'],
      ['?state=RUNNING', 'query.state'],
      ['?state=running&state=error', 'query.state'],
      ['?limit=0', 'query.limit'],
      ['?limit=201', 'query.limit'],
      ['?limit=ten', 'query.limit'],
      ['?limit=1.5', 'query.limit'],
      ['?limit=%205', 'query.limit'],
      ['?limit=', 'query.limit'],
      ['?cursor=', 'query.cursor'],
      ['?sort=name', 'query.sort'],
    ];
    for (const [query, path] of cases) {
      const page = await list(ada.token, query);
      expect({
        query,
        status: page.status,
        code: page.error?.code,
        paths: page.error?.fields?.map((f) => f.path),
      }).toEqual({ query, status: 400, code: 'invalid_request', paths: [path] });
    }
    expect((await list(ada.token, '?limit=200')).status).toBe(200);
  });

  it('answers 400, never 500, to a cursor it did not give out', async () => {
    const id = await api.createGitspace(ada.token, 'cursor-target');
    const b64 = (text: string) => Buffer.from(text).toString('base64url');
    const genuine = b64(`1767225600000000:${id}`);
    expect((await list(ada.token, `?cursor=${genuine}`)).status).toBe(200);
    const forged = [
      'garbage!',
      'not-base64-but-long-enough',
      b64('1767225600000000'),
      b64(':gs-x'),
      b64('1767225600000000:'),
      b64('-1:gs-x'),
      b64('1.5:gs-x'),
      b64('99999999999999999999:gs-x'),
      b64('1767225600000000:gs x'),
      b64("1767225600000000:gs-x' or '1'='1"),
      b64('1767225600000000:gs-x\0'),
      b64('1767225600000000:../gs-x'),
      b64(`1767225600000000:${'a'.repeat(129)}`),
      b64('2026-01-01T00:00:00Z:gs-x'),
      `${genuine}=`,
      `${genuine}AA`,
      Buffer.from(`1767225600000000:${id}`).toString('base64'),
      'x'.repeat(201),
      '%00',
    ];
    for (const cursor of forged) {
      const page = await list(ada.token, `?cursor=${encodeURIComponent(cursor)}`);
      expect({ cursor, status: page.status, paths: page.error?.fields?.map((f) => f.path) }).toEqual({
        cursor,
        status: 400,
        paths: ['query.cursor'],
      });
    }
  });

  it("never shows a member another's gitspace, whatever the cursor", async () => {
    await insertAt(ada.id, [
      { id: 'gs-ada-a', createdAt: '2026-04-01T00:00:01Z' },
      { id: 'gs-ada-b', createdAt: '2026-04-01T00:00:02Z' },
      { id: 'gs-ada-c', createdAt: '2026-04-01T00:00:03Z' },
    ]);
    await insertAt(bob.id, [
      { id: 'gs-bob-a', createdAt: '2026-04-01T00:00:01.5Z' },
      { id: 'gs-bob-b', createdAt: '2026-04-01T00:00:02.5Z' },
    ]);
    // Ada's own cursor, a cursor at the far future and one just past each of ada's rows: bob gets only his own.
    const adas = await list(ada.token, '?limit=1');
    expect(adas.items[0]!.owner).toBe(ada.id);
    const b64 = (text: string) => Buffer.from(text).toString('base64url');
    const cursors = [
      adas.nextCursor!,
      b64('99999999999999999:zzzz'),
      ...['a', 'b', 'c'].map((s) => b64(`${Date.parse('2026-04-01T00:00:05Z') * 1000}:gs-ada-${s}`)),
    ];
    for (const cursor of cursors) {
      const { ids } = await allPages(bob.token, 'limit=1', undefined, cursor);
      expect(ids.length).toBeGreaterThan(0);
      for (const id of ids) expect((await api.store.getGitspace(id)).ownerId).toBe(bob.id);
    }
    const bobs = await allPages(bob.token, 'limit=1');
    expect(bobs.ids).toEqual(['gs-bob-b', 'gs-bob-a']);

    // The administrator pages through everyone's.
    const admins = await allPages(api.adminToken, 'limit=7');
    const owners = new Set(await Promise.all(admins.ids.map(async (id) => (await api.store.getGitspace(id)).ownerId)));
    expect([...owners]).toEqual(expect.arrayContaining([ada.id, bob.id]));
    const count = await api.db
      .selectFrom('gitspaces')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .executeTakeFirstOrThrow();
    expect(admins.ids).toHaveLength(Number(count.n));
    expect(new Set(admins.ids).size).toBe(admins.ids.length);
  });

  it('documents the query parameters in the OpenAPI document', async () => {
    const document = (await api.call('GET', '/openapi.json', api.adminToken)).body;
    const parameters = document.paths['/gitspaces'].get.parameters as { name: string; in: string; schema: object }[];
    expect(parameters.map((p) => [p.name, p.in])).toEqual([
      ['state', 'query'],
      ['limit', 'query'],
      ['cursor', 'query'],
    ]);
    expect(parameters.find((p) => p.name === 'limit')!.schema).toMatchObject({
      type: 'integer',
      minimum: 1,
      maximum: 200,
    });
    expect(
      document.paths['/gitspaces'].get.responses['200'].content['application/json'].schema.properties,
    ).toHaveProperty('nextCursor');
  });
});
