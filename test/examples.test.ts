// Every example, run as its header says, talked to over the wire, and stopped: no example can rot.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TestClient, onCleanup, runCleanups, when } from './helpers.js';

const root = fileURLToPath(new URL('..', import.meta.url));

afterEach(runCleanups);

describe('examples', function () {
  this.timeout(15000);

  it('echo-server echoes, logs every event and closes on Ctrl+C', async () => {
    const child = spawn(process.execPath, ['examples/echo-server.mjs', '0'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    onCleanup(() => { child.kill('SIGKILL'); return exited; });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    await when(child.stdout, ['data'], () => /listening on 127\.0\.0\.1:\d+/.test(out), 'the listening line');
    const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(out)![1]);
    const client = await TestClient.connect(port);
    client.send('HELLO');
    await client.waitFrames(1);
    expect(String(client.frames[0])).to.equal('HELLO');
    await when(child.stdout, ['data'], () => /sent 5 byte\(s\)/.test(out), 'the frame line');
    child.kill('SIGINT');
    expect(await exited).to.equal(0);
    expect(out).to.match(/connected \(#1\)/).and.match(/disconnected \(shutdown\)/).and.match(/closed: 1 drained, 0 forced/);
  });
});
