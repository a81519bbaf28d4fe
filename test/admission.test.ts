// Admission control (docs/admission.md), address rules: allow/deny CIDR lists and per-address connection limits, judged on the
// client's real address (the PROXY source when the PROXY protocol is on). Clients bind other loopback
// addresses (127.0.0.2, 127.0.0.3: every 127/8 address is local on Linux) to come from elsewhere.
import { expect } from 'chai';
import { PulsarError, PulsarServer } from '../lib/index.js';
import { AddressRules, addressGroup } from '../lib/admission/address-rules.js';
import { Cli } from './cli-process.js';
import { TestClient, clientErrors, frame, onCleanup, served, startServer, when } from './helpers.js';

/** A client connecting from `localAddress` (to stand for another client); destroyed after the test. */
function from(localAddress: string, port: number, host = '127.0.0.1'): Promise<TestClient> {
  return TestClient.connect(port, host, { localAddress });
}

describe('address rules', () => {
  describe('CIDR blocks', () => {
    const rules = (allow: string[], deny: string[] = []): AddressRules => new AddressRules('test', allow, deny);

    it('match /0, /32, /128, single addresses and IPv4-mapped IPv6 clients, deny winning over allow', () => {
      expect(rules(['0.0.0.0/0']).admits('203.0.113.9')).to.equal(true);
      expect(rules(['0.0.0.0/0']).admits('2001:db8::1'), 'an IPv4 /0 says nothing of IPv6').to.equal(false);
      expect(rules(['::/0']).admits('2001:db8::1')).to.equal(true);
      expect(rules(['10.1.2.3/32']).admits('10.1.2.3')).to.equal(true);
      expect(rules(['10.1.2.3/32']).admits('10.1.2.4')).to.equal(false);
      expect(rules(['10.1.2.3']).admits('10.1.2.3'), 'a bare address is a /32').to.equal(true);
      expect(rules(['2001:db8::1/128']).admits('2001:db8::1')).to.equal(true);
      expect(rules(['2001:db8::1/128']).admits('2001:db8::2')).to.equal(false);
      expect(rules(['2001:db8::/32']).admits('2001:db8:ffff::1')).to.equal(true);
      expect(rules(['10.0.0.0/8']).admits('::ffff:10.9.8.7'), 'IPv4-mapped').to.equal(true);
      expect(rules(['10.0.0.0/8'], ['10.9.0.0/16']).admits('10.9.8.7'), 'deny wins').to.equal(false);
      expect(rules(['10.0.0.0/8'], ['10.9.0.0/16']).admits('10.8.0.1')).to.equal(true);
      expect(rules([], ['10.0.0.0/8']).admits('192.0.2.1'), 'no allow rule: everyone not denied').to.equal(true);
      expect(rules([]).active).to.equal(false);
    });

    it('refuse malformed blocks with ERR_INVALID_OPTION naming the option', () => {
      for (const bad of ['10.0.0.0/33', '::1/129', 'nonsense', '10.0.0.0/8/1', '10.0.0.0/-1', '']) {
        expect(() => rules([bad]), bad).to.throw(PulsarError, /test: allow must hold CIDR blocks/).with.property('code', 'ERR_INVALID_OPTION');
      }
      expect(() => new PulsarServer({ deny: ['300.0.0.1/8'] })).to.throw(/PulsarServer: deny must hold CIDR blocks/);
      expect(() => new PulsarServer({ deny: '10.0.0.0/8' as never })).to.throw(/deny must be an array of CIDR blocks/);
    });

    it('group IPv6 clients by /64 and IPv4 (mapped or not) by address', () => {
      expect(addressGroup('2001:db8:1:2:aaaa::1')).to.equal('2001:db8:1:2::/64');
      expect(addressGroup('2001:0DB8:0001:0002:bbbb:0:0:2')).to.equal('2001:db8:1:2::/64');
      expect(addressGroup('2001:db8:1:3::1')).to.equal('2001:db8:1:3::/64');
      expect(addressGroup('::1')).to.equal('0:0:0:0::/64');
      expect(addressGroup('1::1.2.3.4')).to.equal('1:0:0:0::/64');
      expect(addressGroup('::ffff:10.1.2.3')).to.equal('10.1.2.3');
      expect(addressGroup('10.1.2.3')).to.equal('10.1.2.3');
    });
  });

  describe('on a live server', () => {
    it('refuses denied addresses at once with ERR_ADDRESS_DENIED naming them, and serves the others', async () => {
      const { server, port } = await startServer({ deny: ['127.0.0.2/32'] });
      const errors = clientErrors(server);
      const bystander = await TestClient.connect(port);
      const denied = await from('127.0.0.2', port);
      const deniedPort = denied.socket.localPort;
      await denied.waitClosed();
      expect(errors).to.have.length(1);
      expect(errors[0]).to.include({ code: 'ERR_ADDRESS_DENIED', port: deniedPort });
      expect(errors[0]!.message).to.match(/^127\.0\.0\.2:\d+: refused, 127\.0\.0\.2 is not allowed to connect \(allow\/deny rules\)$/);
      await served(bystander);
    });

    it('with an allow list, refuses everyone outside it', async () => {
      const { server, port } = await startServer({ allow: ['127.0.0.3/32', '127.0.0.1'] });
      const errors = clientErrors(server);
      const inside = await from('127.0.0.3', port);
      inside.socket.write(frame('in'));
      await new Promise((resolve) => inside.socket.once('data', resolve));
      const outside = await from('127.0.0.2', port);
      await outside.waitClosed();
      expect(errors.map((e) => e.code)).to.deep.equal(['ERR_ADDRESS_DENIED']);
    });

    it('caps connections per address with ERR_MAX_CONNECTIONS naming it; other addresses and freed places are served', async () => {
      const { server, port } = await startServer({ maxConnectionsPerAddress: 3 });
      const errors = clientErrors(server);
      const mine = await Promise.all(Array.from({ length: 5 }, () => from('127.0.0.2', port)));
      await when(server, ['clientError'], () => errors.length === 2, 'two refusals');
      expect(errors.every((e) => e.code === 'ERR_MAX_CONNECTIONS')).to.equal(true);
      expect(errors[0]!.message).to.match(/refused, 3 connections from 127\.0\.0\.2 are already open \(maxConnectionsPerAddress\)$/);
      const others = await Promise.all(Array.from({ length: 3 }, () => TestClient.connect(port)));
      for (const client of others) await served(client);
      expect(server.connections.size).to.equal(6);
      const open = mine.filter((c) => !c.socket.destroyed && c.socket.readyState === 'open');
      open[0]!.socket.end();
      await when(server, ['disconnect'], () => server.connections.size === 5, 'one place freed');
      const again = await from('127.0.0.2', port);
      again.socket.write(frame('back'));
      await new Promise((resolve) => again.socket.once('data', resolve));
      expect(errors).to.have.length(2);
    });

    it('counts IPv6 clients per /64 (on ::1)', async () => {
      const { server, port } = await startServer({ host: '::1', maxConnectionsPerAddress: 1 });
      const errors = clientErrors(server);
      await from('::1', port, '::1');
      const second = await from('::1', port, '::1');
      await second.waitClosed();
      expect(errors.map((e) => [e.code, /from 0:0:0:0::\/64 are already open/.test(e.message)])).to.deep.equal([['ERR_MAX_CONNECTIONS', true]]);
    });

    it('judges the address a PROXY header names, not the proxy\'s', async () => {
      const { server, port } = await startServer({ proxyProtocol: true, deny: ['203.0.113.0/24'], maxConnectionsPerAddress: 1 });
      const errors = clientErrors(server);
      const proxied = (source: string): Promise<TestClient> => TestClient.connect(port).then((client) => {
        client.socket.write(Buffer.concat([Buffer.from(`PROXY TCP4 ${source} 10.0.0.1 51234 8080\r\n`), frame('hi')]));
        return client;
      });
      const denied = await proxied('203.0.113.7');
      await denied.waitClosed();
      const first = await proxied('198.51.100.1');
      await first.waitFrames(1);
      const second = await proxied('198.51.100.1'); // the proxy's own address is 127.0.0.1 for both
      await second.waitClosed();
      const other = await proxied('198.51.100.2');
      await other.waitFrames(1);
      expect(errors.map((e) => e.code)).to.deep.equal(['ERR_ADDRESS_DENIED', 'ERR_MAX_CONNECTIONS']);
      expect(errors[0]!.message).to.match(/^203\.0\.113\.7:51234: refused, 203\.0\.113\.7 is not allowed/);
    });
  });

  describe('trusted proxies', () => {
    it('believe PROXY headers only from trustedProxies, refusing a forged one from anywhere else before reading it', async () => {
      const { server, port } = await startServer({ proxyProtocol: true, trustedProxies: ['127.0.0.2/32'] });
      const errors = clientErrors(server);
      const header = (source: string): Buffer => Buffer.from(`PROXY TCP4 ${source} 10.0.0.1 40000 8080\r\n`);
      const proxy = await from('127.0.0.2', port);
      proxy.socket.write(Buffer.concat([header('198.51.100.9'), frame('via the proxy')]));
      await new Promise((resolve) => proxy.socket.once('data', resolve));
      expect([...server.connections.values()].map((c) => c.remoteAddress)).to.deep.equal(['198.51.100.9']);
      const forger = await from('127.0.0.3', port);
      const forgerPort = forger.socket.localPort;
      forger.socket.write(Buffer.concat([header('10.0.0.7'), frame('trust me')]));
      await forger.waitClosed();
      expect(errors).to.have.length(1);
      expect(errors[0]).to.include({ code: 'ERR_PROXY_PROTOCOL', port: forgerPort });
      expect(errors[0]!.message).to.match(/^127\.0\.0\.3:\d+: refused, 127\.0\.0\.3 is not a trusted proxy \(trustedProxies\)/);
      expect(server.connections.size).to.equal(1);
    });

    it('need proxyProtocol, and refuse malformed blocks', () => {
      expect(() => new PulsarServer({ trustedProxies: ['10.0.0.1'] })).to.throw(/trustedProxies needs proxyProtocol/).with.property('code', 'ERR_INVALID_OPTION');
      expect(() => new PulsarServer({ proxyProtocol: true, trustedProxies: ['10.0.0.1/99'] })).to.throw(/PulsarServer: trustedProxies must hold CIDR blocks/);
    });
  });

  describe('admit hook', () => {
    it('refuses what it answers false to, or throws on, with ERR_REFUSED, before reading anything', async () => {
      const { server, port } = await startServer({
        admit: (conn) => {
          if (conn.remoteAddress === '127.0.0.3') throw new Error('blocked by policy');
          return conn.remoteAddress !== '127.0.0.2';
        },
      });
      const errors = clientErrors(server);
      const refused = await from('127.0.0.2', port);
      refused.socket.write(frame('never read'));
      await refused.waitClosed();
      const thrower = await from('127.0.0.3', port);
      await thrower.waitClosed();
      expect(errors.map((e) => [e.code, e.message.replace(/^\S+ \(connection \d+\): /, '')])).to.deep.equal([
        ['ERR_REFUSED', 'refused by the admit hook'],
        ['ERR_REFUSED', 'refused, the admit hook threw: blocked by policy'],
      ]);
      expect(server.stats().framesIn).to.equal(0);
      await served(await TestClient.connect(port));
    });

    it('waits for an async answer without reading, then serves what arrived meanwhile', async () => {
      let admitNow: (answer: boolean) => void = () => {};
      let asked: () => void = () => {};
      const hookCalled = new Promise<void>((resolve) => (asked = resolve));
      const { server, port } = await startServer({
        admit: () => new Promise<boolean>((resolve) => {
          admitNow = resolve;
          asked();
        }),
      });
      const client = await TestClient.connect(port);
      client.send('sent while waiting');
      await hookCalled;
      expect(server.connections.size, 'not served while the hook has not answered').to.equal(0);
      expect(server.stats().bytesIn).to.equal(0);
      admitNow(true);
      await client.waitFrames(1);
      expect(String(client.frames[0])).to.equal('sent while waiting');
      expect(server.connections.size).to.equal(1);
    });

    it('refuses on a rejection, and after admitTimeout when it does not answer; a slow one still counts toward maxConnections', async () => {
      const { server, port } = await startServer({
        admitTimeout: 300,
        maxConnections: 2,
        admit: (conn) => (conn.remoteAddress === '127.0.0.2' ? Promise.reject(new Error('quota service down')) : new Promise<boolean>(() => {})),
      });
      const errors = clientErrors(server);
      const rejected = await from('127.0.0.2', port);
      await rejected.waitClosed();
      const started = Date.now();
      const slow = await Promise.all([from('127.0.0.3', port), from('127.0.0.3', port)]);
      const third = await from('127.0.0.4', port); // two are waiting: no place left
      await third.waitClosed();
      await Promise.all(slow.map((s) => s.waitClosed()));
      expect(Date.now() - started).to.be.within(250, 300 + 2000);
      expect(errors.map((e) => e.code)).to.deep.equal(['ERR_REFUSED', 'ERR_MAX_CONNECTIONS', 'ERR_REFUSED', 'ERR_REFUSED']);
      expect(errors[0]!.message).to.match(/refused, the admit hook failed: quota service down$/);
      expect(errors[2]!.message).to.match(/refused, the admit hook did not answer within 300 ms$/);
    });

    it('lets close() end connections still waiting for the hook', async () => {
      let asked: () => void = () => {};
      const hookCalled = new Promise<void>((resolve) => (asked = resolve));
      const server = new PulsarServer({
        port: 0, heartbeat: false, reportInterval: false,
        admit: () => {
          asked();
          return new Promise<boolean>(() => {}); // never answers
        },
      });
      onCleanup(() => server.close()); // the same promise as below: cleanup only if the test fails first
      const { port } = await server.listen();
      const waiting = await from('127.0.0.1', port);
      await hookCalled;
      const result = await server.close();
      await waiting.waitClosed();
      expect(result).to.deep.equal({ drained: 0, forced: 0 });
    });
  });

  describe('CLI', function () {
    this.timeout(15000);

    it('takes --allow, --deny (repeatable) and --max-per-address, and refuses a bad block with exit 2', async () => {
      const cli = new Cli(['--port', '0', '--deny', '127.0.0.2', '--deny', '127.0.0.4/32', '--max-per-address', '1']);
      const port = await cli.port();
      const denied = await from('127.0.0.4', port);
      await denied.waitClosed();
      await cli.line(/127\.0\.0\.4:\d+: refused, 127\.0\.0\.4 is not allowed to connect \(allow\/deny rules\) \[ERR_ADDRESS_DENIED\]/);
      const first = await from('127.0.0.3', port);
      first.send('served');
      expect(String((await first.waitFrames(1))[0]), 'the first from 127.0.0.3 is served').to.equal('served');
      const second = await from('127.0.0.3', port);
      await second.waitClosed();
      await cli.line(/refused, 1 connections from 127\.0\.0\.3 are already open \(maxConnectionsPerAddress\) \[ERR_MAX_CONNECTIONS\]/);
      const bad = new Cli(['--allow', '10.0.0.0/40']);
      expect((await bad.exit()).code).to.equal(2);
      expect(bad.stderr[0]).to.equal("pulsar: --allow must hold CIDR blocks such as 10.0.0.0/8 or 2001:db8::/32, got '10.0.0.0/40' (string)");
      const untrusting = new Cli(['--trusted-proxy', '127.0.0.2']);
      expect((await untrusting.exit()).code).to.equal(2);
      expect(untrusting.stderr[0]).to.equal('pulsar: --trusted-proxy needs proxyProtocol (there is no PROXY header to trust without it)');
    });

    it('refuses PROXY headers from outside --trusted-proxy', async () => {
      const cli = new Cli(['--port', '0', '--proxy-protocol', '--trusted-proxy', '127.0.0.2']);
      const port = await cli.port();
      const forger = await from('127.0.0.3', port);
      forger.socket.write(Buffer.from('PROXY TCP4 10.0.0.7 10.0.0.1 40000 8080\r\n'));
      await forger.waitClosed();
      await cli.line(/127\.0\.0\.3:\d+: refused, 127\.0\.0\.3 is not a trusted proxy .* \[ERR_PROXY_PROTOCOL\]/);
      expect(forger.frames, 'nothing answered to the forger').to.deep.equal([]);
      // The trusted proxy's header is believed: its client is served under the address the header gives.
      const proxy = await from('127.0.0.2', port);
      proxy.socket.write(Buffer.concat([Buffer.from('PROXY TCP4 10.0.0.7 10.0.0.1 40000 8080\r\n'), frame('through the proxy')]));
      expect(String((await proxy.waitFrames(1))[0])).to.equal('through the proxy');
      await cli.line(/pulsar:connection 10\.0\.0\.7:40000 connected/);
    });
  });
});
