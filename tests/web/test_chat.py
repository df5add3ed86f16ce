"""The chat page in Chromium, against a real chat-server and the headless terminal client.
Each test is bounded (timeouts of a few seconds) and starts its own server."""

from __future__ import annotations

import os
import shutil
import signal
import time

import pytest
from playwright.sync_api import Page

from conftest import SCREENSHOTS, Pages
from harness import CSP, ROOT, ChatServer, PageServer, free_port

GENERAL = "/ #general"

SHOWN_JS = """
w => {
  const log = document.querySelector(`ol[data-window="${w}"]`);
  if (!log) return [];
  return [...log.querySelectorAll('li.msg')].map(li =>
    (li.classList.contains('pending') ? 'PENDING ' : '') +
    li.dataset.from + ': ' + li.querySelector('.text').textContent);
}
"""


def shown(page: Page, window: str = GENERAL) -> list[str]:
    """The messages of a window in the order shown, as 'from: text' ('PENDING ...' unacked)."""
    return page.evaluate(SHOWN_JS, window)


def wait_shown(page: Page, expected: list[str], window: str = GENERAL, timeout: float = 10) -> list[str]:
    """Waits until every expected line is shown, acked; returns what is shown."""
    deadline = time.monotonic() + timeout
    while True:
        lines = shown(page, window)
        if all(e in lines for e in expected):
            return lines
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {expected} in {window}, shown: {lines}")
        page.wait_for_timeout(50)


def wait_joined(page: Page, window: str = GENERAL, timeout: float = 10) -> None:
    """The page joined the room, shows its window, and the message input has the focus."""
    page.wait_for_function(
        """w => window.chatPage && chatPage.active && chatPage.active.key === w &&
               document.activeElement && document.activeElement.id === 'composer' &&
               chatPage.client.isConnected(w.split(' ')[0])""",
        arg=window,
        timeout=timeout * 1000,
    )


def send(page: Page, text: str) -> None:
    page.locator("#composer").fill(text)
    page.locator("#composer").press("Enter")


def only_once(lines: list[str], line: str) -> None:
    assert lines.count(line) == 1, f"{line!r} shown {lines.count(line)} times: {lines}"


def test_sio_codecs_read_and_write_the_wire_strings_of_the_protocol(pages):
    """sio.js's packet and payload codecs, on the literal strings of docs/PROTOCOL.md and the
    Engine.IO v4 long-polling payload format. (A Socket.IO packet is what follows the Engine.IO
    message type `4`: the frame `431[...]` carries the packet `31[...]`.)"""
    page = pages.open(None)
    result = page.evaluate(
        """async () => {
            const sio = await import('/sio.js');
            const out = {};
            out.connect = sio.encodePacket(0, '/', {nick: 'ada'});
            out.connectNs = sio.encodePacket(0, '/team', {nick: 'ada', since: {ops: 4}});
            out.event = sio.encodePacket(2, '/', ['join', {room: 'general'}], 0);
            out.eventNs = sio.encodePacket(2, '/team', ['typing', {room: 'ops'}]);
            out.disconnectNs = sio.encodePacket(1, '/team');
            out.ack = sio.decodePacket('31[{"ok":true,"message":{"seq":1}}]');
            out.ackNs = sio.decodePacket('3/team,12[{"ok":true}]');
            out.error = sio.decodePacket('4/ops,{"message":"namespace /ops requires a key","data":{"code":"forbidden"}}');
            out.connected = sio.decodePacket('0{"sid":"Be4n_o_jMH4RIE0PFm5H"}');
            out.serverDisconnect = sio.decodePacket('1/team,');
            out.binary = sio.decodePacket('51-["up",{"_placeholder":true,"num":0}]');
            out.payload = sio.decodePayload('2\x1e451-["up",{"_placeholder":true,"num":0}]\x1ebAQID')
                .map(p => typeof p === 'string' ? p : Array.from(p));
            out.empty = sio.decodePayload('');
            out.ws = sio.engineUrl('http://127.0.0.1:7878', 'websocket');
            out.wsUpgrade = sio.engineUrl('https://chat.example', 'websocket', 'abc');
            out.polling = sio.engineUrl('http://127.0.0.1:7878', 'polling', 'abc');
            out.delays = Array.from({length: 200}, (_, i) => sio.backoff(i % 8, 250, 3000));
            return out;
        }"""
    )
    assert result["connect"] == '0{"nick":"ada"}'
    assert result["connectNs"] == '0/team,{"nick":"ada","since":{"ops":4}}'
    assert result["event"] == '20["join",{"room":"general"}]'
    assert result["eventNs"] == '2/team,["typing",{"room":"ops"}]'
    assert result["disconnectNs"] == "1/team,"
    assert result["ack"] == {"type": 3, "nsp": "/", "id": 1, "data": [{"ok": True, "message": {"seq": 1}}], "binary": False}
    assert result["ackNs"]["nsp"] == "/team" and result["ackNs"]["id"] == 12
    assert result["error"]["type"] == 4 and result["error"]["data"]["data"]["code"] == "forbidden"
    assert result["connected"]["data"] == {"sid": "Be4n_o_jMH4RIE0PFm5H"} and result["connected"]["id"] is None
    assert result["serverDisconnect"] == {"type": 1, "nsp": "/team", "id": None, "data": None, "binary": False}
    assert result["binary"]["binary"] and result["binary"]["data"][0] == "up"
    assert result["payload"] == ["2", '451-["up",{"_placeholder":true,"num":0}]', [1, 2, 3]]
    assert result["empty"] == []
    assert result["ws"] == "ws://127.0.0.1:7878/socket.io/?EIO=4&transport=websocket"
    assert result["wsUpgrade"] == "wss://chat.example/socket.io/?EIO=4&transport=websocket&sid=abc"
    assert result["polling"] == "http://127.0.0.1:7878/socket.io/?EIO=4&transport=polling&sid=abc"
    # Reconnect delays: 250 ms doubling to a 3 s cap, times a jitter of 0.5 to 1.
    delays = result["delays"]
    assert min(delays) >= 125 and max(delays) <= 3000
    assert all(125 <= d <= 250 for d in delays[0::8])
    assert all(1500 <= d <= 3000 for d in delays[7::8])


def test_two_pages_and_a_terminal_see_each_message_once_in_order(pages, terminal):
    bob = terminal("bob")
    bob.send("/join general")
    bob.wait_for("you joined #general")
    ada = pages.open("ada")
    cid = pages.open("cid")
    wait_joined(ada)
    wait_joined(cid)
    # A same-origin WebSocket under `connect-src 'self'`.
    assert ada.locator("#status").text_content() == "connected (WebSocket)"

    send(ada, "one from ada")
    wait_shown(cid, ["ada: one from ada"])
    bob.wait_for("<ada> one from ada")
    send(cid, "two from cid")
    wait_shown(ada, ["cid: two from cid"])
    bob.wait_for("<cid> two from cid")
    bob.send("three from bob")
    expected = ["ada: one from ada", "cid: two from cid", "bob: three from bob"]
    for page in (ada, cid):
        lines = wait_shown(page, expected)
        assert [x for x in lines if x in expected] == expected
        assert len(lines) == 3, lines
    for text in ("<ada> one from ada", "<cid> two from cid"):
        assert bob.count(text) == 1
    # Who is online: the join reply, then presence events.
    ada.wait_for_function("() => document.querySelectorAll('#members li').length === 3")
    assert ada.locator("#members").inner_text().split() == ["ada", "bob", "cid"]
    bob.send("/leave general")
    ada.wait_for_function("() => document.querySelectorAll('#members li').length === 2")


def test_the_sender_sees_its_message_at_once_pending_then_acked_once(pages):
    ada = pages.open("ada")
    wait_joined(ada)
    send(ada, "quick")
    # Shown at once (pending or already acked), and never twice.
    lines = shown(ada)
    assert lines in (["PENDING ada: quick"], ["ada: quick"]), lines
    lines = wait_shown(ada, ["ada: quick"])
    assert lines == ["ada: quick"]


def test_the_typing_indicator_appears_and_clears(pages):
    ada = pages.open("ada")
    cid = pages.open("cid")
    wait_joined(ada)
    wait_joined(cid)
    cid.locator("#composer").type("hel")
    ada.wait_for_function(
        "() => document.getElementById('typing').textContent === 'cid is typing…'", timeout=5000
    )
    # No more typing: gone after 5 s.
    ada.wait_for_function(
        "() => document.getElementById('typing').textContent === ''", timeout=7000
    )
    # Typing again, then the message: the line goes with the message.
    cid.locator("#composer").type("lo")
    cid.wait_for_timeout(3100)  # at most one typing event every 3 s
    cid.locator("#composer").type("!")
    ada.wait_for_function(
        "() => document.getElementById('typing').textContent === 'cid is typing…'", timeout=5000
    )
    cid.locator("#composer").press("Enter")
    wait_shown(ada, ["cid: hello!"])
    assert ada.locator("#typing").text_content() == ""


def test_a_direct_message_between_a_page_and_the_terminal(pages, terminal):
    ada = pages.open("ada")
    wait_joined(ada)
    bob = terminal("bob")
    bob.wait_for("connected")
    bob.send("/msg ada psst, ada")
    ada.wait_for_selector('ol[data-window="/ @bob"]', state="attached")
    wait_shown(ada, ["bob: psst, ada"], window="/ @bob")
    # Counted as unread and a mention while ada looks at #general; the title says so.
    assert ada.locator('button[data-key="/ @bob"] .badge.unread').text_content() == "1"
    assert ada.locator('button[data-key="/ @bob"] .badge.mention').text_content() == "@1"
    assert ada.title().startswith("(1!)")
    # Keyboard: Alt+Down goes to the next window (the conversation with bob).
    ada.keyboard.press("Alt+ArrowDown")
    ada.wait_for_function("() => chatPage.active.key === '/ @bob'")
    assert ada.evaluate("document.activeElement.id") == "composer"
    assert not ada.title().startswith("(")
    send(ada, "hi bob")
    bob.wait_for("[/ @ada] <ada> hi bob")
    wait_shown(ada, ["ada: hi bob"], window="/ @bob")
    # Ctrl+K, a few letters, Enter: back to #general.
    ada.keyboard.press("Control+k")
    ada.locator("#switcher-input").type("gen")
    ada.keyboard.press("Enter")
    ada.wait_for_function("() => chatPage.active.key === '/ #general'")
    assert ada.evaluate("document.activeElement.id") == "composer"
    # Ctrl+K, Down, Enter: the second window of the list; Esc closes it with no change.
    ada.keyboard.press("Control+k")
    ada.keyboard.press("ArrowDown")
    ada.keyboard.press("Enter")
    ada.wait_for_function("() => chatPage.active.key === '/ #general'")
    ada.keyboard.press("Control+k")
    ada.keyboard.press("Escape")
    assert ada.locator("#switcher").is_hidden()
    assert ada.evaluate("document.activeElement.id") == "composer"


def test_direct_messages_are_kept_across_a_reload_and_not_for_another_nick(pages, terminal):
    ada = pages.open("ada")
    wait_joined(ada)
    bob = terminal("bob")
    bob.wait_for("connected")
    bob.send("/msg ada the plan is on")
    wait_shown(ada, ["bob: the plan is on"], window="/ @bob")
    ada.evaluate("() => chatPage.sendDm('/', 'bob', 'noted', false)")
    bob.wait_for("[/ @ada] <ada> noted")
    wait_shown(ada, ["ada: noted"], window="/ @bob")
    ada.reload()
    wait_joined(ada)
    # The conversation is back, each message once, and goes on.
    assert shown(ada, "/ @bob") == ["bob: the plan is on", "ada: noted"]
    bob.send("/msg ada and after the reload")
    wait_shown(ada, ["bob: and after the reload"], window="/ @bob")
    assert shown(ada, "/ @bob") == ["bob: the plan is on", "ada: noted", "bob: and after the reload"]
    # A new nick keeps its conversations (opened again under that nick).
    send(ada, "/nick ada2")
    ada.wait_for_function("() => document.getElementById('me-nick').textContent === 'ada2'")
    url = ada.url
    ada.goto(url.replace("nick=ada", "nick=ada2"))
    wait_joined(ada)
    assert ada.evaluate("() => chatPage.client.nick") == "ada2"
    wait_shown(ada, ["bob: the plan is on", "ada: noted", "bob: and after the reload"], window="/ @bob")
    # Another nick in the same tab (a link with another nick): nothing of ada's.
    ada.goto(url.replace("nick=ada", "nick=eve"))
    wait_joined(ada)
    assert ada.evaluate("() => chatPage.client.nick") == "eve"
    assert ada.locator('ol[data-window="/ @bob"]').count() == 0


def test_search_finds_a_phrase_and_jumps_to_an_older_message(pages):
    ada = pages.open("ada")
    wait_joined(ada)
    texts = ["the red kite flies", "明日は東京タワーに行く"] + [f"filler {i}" for i in range(80)]
    ada.evaluate(
        "async texts => { for (const t of texts) await chatPage.client.send('/', 'general', t); }", texts
    )
    wait_shown(ada, ["ada: filler 79"])
    # A page that joins now is shown only the last 50: both hits are older.
    cid = pages.open("cid")
    wait_joined(cid)
    wait_shown(cid, ["ada: filler 79"])
    assert "ada: the red kite flies" not in shown(cid)
    # The bar's Search button starts the command in the input line.
    cid.locator("#search-button").click()
    assert cid.locator("#composer").input_value() == "/search "
    assert cid.evaluate("document.activeElement.id") == "composer"
    cid.locator("#composer").type("red KITE")
    cid.locator("#composer").press("Enter")
    cid.wait_for_selector("#search:not([hidden]) button.hit")
    hits = cid.locator("#search-list button.hit").all_inner_texts()
    assert len(hits) == 1 and "the red kite flies" in hits[0], hits
    assert cid.locator("#search-title").inner_text() == '"red KITE" in #general'
    cid.locator("#search-list button.hit").first.click()
    cid.wait_for_selector("#search", state="hidden")
    # Older pages were loaded until it was there: outlined, in view.
    cid.wait_for_function(
        "() => [...document.querySelectorAll('li.msg.found .text')].some(e => e.textContent === 'the red kite flies')"
    )
    lines = shown(cid)
    assert lines.index("ada: the red kite flies") < lines.index("ada: filler 0") < lines.index("ada: filler 79")
    assert cid.evaluate(
        """() => { const li = document.querySelector('li.msg.found');
                   const r = li.getBoundingClientRect(), l = li.closest('ol').getBoundingClientRect();
                   return r.top >= l.top && r.bottom <= l.bottom; }"""
    )
    # A phrase inside a run of Japanese; and nothing found.
    send(cid, "/search 東京")
    cid.wait_for_function("() => document.querySelector('#search-list').textContent.includes('東京タワー')")
    cid.keyboard.press("Escape")
    cid.wait_for_selector("#search", state="hidden")
    send(cid, "/search osprey")
    cid.wait_for_function("() => document.querySelector('#search-list').textContent.includes('no message holds it')")


def test_kept_direct_messages_fit_a_budget_and_give_way_to_the_session(pages):
    """chat.js's DmHistory on a storage of its own: at most DMS_CHARS_MAX characters whatever
    arrives (the conversations least recently written to go first), and a session that no
    longer fits in a full storage takes the kept messages' room."""
    page = pages.open(None)
    result = page.evaluate(
        """async () => {
            const m = await import('/chat.js');
            const fake = (quota) => {
              const data = new Map();
              return {
                data,
                getItem: (k) => (data.has(k) ? data.get(k) : null),
                setItem: (k, v) => {
                  let used = v.length;
                  for (const [key, value] of data) if (key !== k) used += value.length;
                  if (used > quota) throw new DOMException('full', 'QuotaExceededError');
                  data.set(k, v);
                },
                removeItem: (k) => data.delete(k),
              };
            };
            const out = {};
            const storage = fake(10_000_000);
            const dms = new m.DmHistory(storage);
            dms.load('ada');
            const text = 'x'.repeat(4000);
            for (let peer = 0; peer < 12; peer++) {
              for (let i = 0; i < 40; i++) {
                dms.add('/', `p${peer}`, { id: `${peer}-${i}`, from: `p${peer}`, to: 'ada', text, ts: peer * 1000 + i, action: false });
              }
            }
            out.chars = storage.getItem(m.DMS_KEY).length;
            const kept = new m.DmHistory(storage).load('ada')['/'];
            out.peers = Object.keys(kept).sort();
            out.newest = kept['p11'] ? kept['p11'].messages.length : 0;
            out.other = Object.keys(new m.DmHistory(storage).load('eve')).length;
            // A full storage: the session is saved, the kept messages gave way.
            const small = fake(300_000);
            const kept2 = new m.DmHistory(small);
            kept2.load('ada');
            kept2.add('/', 'bob', { id: '1', from: 'bob', to: 'ada', text: 'y'.repeat(250_000), ts: 1, action: false });
            new m.SessionStore(small).save({ nick: 'ada', nss: { '/': { since: { general: 7 }, outbox: [{ cid: 'c1', room: 'general', text: 'z'.repeat(100_000) }] } } });
            out.session = new m.SessionStore(small).load() !== null;
            out.dmsGone = small.getItem(m.DMS_KEY) === null;
            out.max = m.DMS_CHARS_MAX;
            return out;
        }"""
    )
    assert result["chars"] <= result["max"], result
    assert "p11" in result["peers"] and result["newest"] == 40, result
    assert len(result["peers"]) < 12, f"some conversations had to go: {result['peers']}"
    assert result["other"] == 0, "another nick gets none of them"
    assert result["session"] and result["dmsGone"], result


def test_mentions_are_highlighted_and_counted(pages, terminal):
    ada = pages.open("ada")
    wait_joined(ada)
    bob = terminal("bob")
    bob.send("/join general")
    bob.wait_for("you joined #general")
    ada.locator("#composer").fill("/join other")
    ada.locator("#composer").press("Enter")
    wait_joined(ada, "/ #other")
    bob.send("hey ada, look")
    bob.send("/me waves at everyone")
    ada.wait_for_function(
        "() => document.querySelector('button[data-key=\"/ #general\"] .badge.mention')"
    )
    # Both messages counted (the action arrives after the mention).
    ada.wait_for_function("() => document.title.startsWith('(2!)')")
    # Two unread, one of them a mention.
    assert ada.locator('button[data-key="/ #general"] .badge.unread').text_content() == "2"
    assert ada.locator('button[data-key="/ #general"] .badge.mention').text_content() == "@1"
    ada.locator('button[data-key="/ #general"]').click()
    mark = ada.locator(f'ol[data-window="{GENERAL}"] li.mentioned mark.mention')
    assert mark.text_content() == "ada"
    action = ada.locator(f'ol[data-window="{GENERAL}"] li.action .from')
    assert action.text_content() == "* bob"


def test_a_long_nick_leaves_the_text_room_and_a_mark_continues_a_word(pages, terminal):
    # A nick of the most characters allowed, on a phone-sized page: its text keeps room.
    tamil = pages.open("\u0ba4\u0bae", width=360, height=740)  # தம
    wait_joined(tamil)
    long_nick = "b" * 32
    bob = terminal(long_nick)
    bob.send("/join general")
    bob.wait_for("you joined #general")
    inside = "\u0bb5\u0ba3\u0b95\u0bcd\u0b95\u0bae\u0bcd \u0ba4\u0bae\u0bbf\u0bb4\u0bcd"  # வணக்கம் தமிழ்
    bob.send(inside)
    bob.send("hello \u0ba4\u0bae, look")
    wait_shown(tamil, [f"{long_nick}: {inside}", f"{long_nick}: hello \u0ba4\u0bae, look"])
    items = tamil.locator(f'ol[data-window="{GENERAL}"] li.msg')
    widths = tamil.evaluate(
        """w => [...document.querySelectorAll(`ol[data-window="${w}"] li.msg .text`)]
                 .map(t => t.getBoundingClientRect().width)""",
        GENERAL,
    )
    assert widths and min(widths) > 120, f"text columns {widths} px wide at 360 px"
    # தம inside தமிழ் (a vowel sign follows) is not a mention; the word on its own is.
    classes = [items.nth(i).get_attribute("class") for i in range(items.count())]
    assert ["mentioned" in c for c in classes[-2:]] == [False, True], classes


def test_a_long_room_list_scrolls_and_a_second_join_adds_no_line(pages):
    ada = pages.open("ada", height=700)
    wait_joined(ada)
    rooms = [f"r{i}" for i in range(40)]
    ada.evaluate("async rooms => { for (const r of rooms) await chatPage.join('/', r, false); }", rooms)
    ada.wait_for_function("n => document.querySelectorAll('#window-list li').length >= n", arg=len(rooms) + 2)
    # The forms below the list stay in view; the list scrolls instead.
    box = ada.locator("#join-room").bounding_box()
    assert box and box["y"] + box["height"] <= 700, f"the join field is at {box} in a 700 px page"
    lengths = ada.evaluate(
        "() => { const l = document.getElementById('window-list'); return [l.scrollHeight, l.clientHeight]; }"
    )
    assert lengths[0] > lengths[1], f"the list does not scroll: {lengths}"
    # Numbers in names sort as numbers: r2 before r10.
    names = ada.locator("#window-list button").all_inner_texts()
    assert names.index("#r2") < names.index("#r10") < names.index("#r39"), names
    # Joining again a room the page is in selects it (its entry brought into the list's view)
    # and adds no second "you joined".
    for room in ["r39", "general", "r39"]:
        send(ada, f"/join #{room}")
        wait_joined(ada, f"/ #{room}")
    text = ada.locator('ol[data-window="/ #r39"]').inner_text()
    assert text.count("you joined #r39") == 1, text
    text = ada.locator(f'ol[data-window="{GENERAL}"]').inner_text()
    assert text.count("you joined #general") == 1, text
    inside = ada.evaluate(
        """() => {
          const l = document.getElementById('window-list').getBoundingClientRect();
          const e = document.querySelector('#window-list [aria-current="true"]').getBoundingClientRect();
          return [e.top >= l.top - 1 && e.bottom <= l.bottom + 1, l.top, l.bottom, e.top, e.bottom];
        }"""
    )
    assert inside[0], f"the active room's entry is out of the list's view (list, entry: top, bottom): {inside}"


AT_BOTTOM_JS = """w => { const l = document.querySelector(`ol[data-window="${w}"]`);
  return l.scrollHeight - l.scrollTop - l.clientHeight; }"""


def test_a_narrower_window_keeps_the_view_at_the_bottom(pages):
    ada = pages.open("ada", width=1280, height=800)
    wait_joined(ada)
    lines = [f"line {i}: " + "words that wrap on a narrow screen " * 3 for i in range(30)]
    ada.evaluate(
        "async lines => { for (const l of lines) await chatPage.client.send('/', 'general', l); }", lines
    )
    wait_shown(ada, [f"ada: {line}" for line in lines[-3:]])
    ada.wait_for_function(f"w => ({AT_BOTTOM_JS})(w) < 40", arg=GENERAL)
    ada.set_viewport_size({"width": 360, "height": 740})
    # The lines wrap into several times the height; the newest stays in view.
    ada.wait_for_function(f"w => ({AT_BOTTOM_JS})(w) < 40", arg=GENERAL, timeout=3000)
    ada.set_viewport_size({"width": 1280, "height": 800})
    ada.wait_for_function(f"w => ({AT_BOTTOM_JS})(w) < 40", arg=GENERAL, timeout=3000)


def test_marks_stacked_on_a_letter_do_not_draw_over_the_line_above(pages):
    ada = pages.open("ada")
    wait_joined(ada)
    send(ada, "Tiếng Việt: Ểể Ậậ Ặặ Ỗỗ, and a line of plain text")
    wait_shown(ada, ["ada: Tiếng Việt: Ểể Ậậ Ặặ Ỗỗ, and a line of plain text"])
    items = ada.locator(f'ol[data-window="{GENERAL}"] li.msg')
    above = items.nth(items.count() - 1)
    before = above.screenshot()
    # 40 marks above each letter (accents that fonts stack on one another): allowed in a
    # message.
    marks = "\u0301\u0300\u0302\u0303\u0304\u0306\u0307\u0308" * 5
    zalgo = "".join(c + marks for c in "zalgo")
    send(ada, zalgo)
    wait_shown(ada, [f"ada: {zalgo}"])
    ada.wait_for_timeout(200)
    after = above.screenshot()
    assert before == after, "the marks of the next message drew over this one"


def test_away_back_and_whois(pages, terminal):
    ada = pages.open("ada")
    wait_joined(ada)
    bob = terminal("bob")
    bob.send("/join general")
    bob.wait_for("you joined #general")
    bob.send("/away lunch")
    log = ada.locator(f'ol[data-window="{GENERAL}"]')
    ada.wait_for_function(
        "() => [...document.querySelectorAll('#members .member')].some(b => b.textContent === 'bob away')"
    )
    assert "bob is away: lunch" in log.inner_text()
    send(ada, "/whois bob")
    ada.wait_for_function("() => document.querySelector('ol[data-window=\"/ #general\"]').textContent.includes('bob: online, guest, with you in #general')")
    assert "away: lunch" in log.inner_text()
    bob.send("/back")
    ada.wait_for_function(
        "() => [...document.querySelectorAll('#members .member')].some(b => b.textContent === 'bob')"
    )
    assert "bob is back" in log.inner_text()
    send(ada, "/away in a meeting")
    ada.wait_for_function("() => document.querySelector('ol[data-window=\"/ #general\"]').textContent.includes('you are away: in a meeting')")


def test_html_and_script_in_a_message_show_as_text(pages):
    ada = pages.open("ada")
    cid = pages.open("cid")
    wait_joined(ada)
    wait_joined(cid)
    dialogs = []
    cid.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    evil = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script><b>bold</b> & &amp;'
    send(ada, evil)
    lines = wait_shown(cid, [f"ada: {evil}"])
    assert lines == [f"ada: {evil}"]
    log = cid.locator(f'ol[data-window="{GENERAL}"]')
    assert log.locator("img, script, b").count() == 0
    assert cid.evaluate("window.pwned") is None
    assert dialogs == []
    # Topics are text too.
    send(ada, "/topic <i>topic</i>")
    cid.wait_for_function("() => document.getElementById('window-topic').textContent === '<i>topic</i>'")


@pytest.mark.parametrize("transport", [None, "polling"])
def test_a_reloaded_page_catches_up_without_duplicates(pages, terminal, transport):
    ada = pages.open("ada", transport=transport)
    wait_joined(ada)
    bob = terminal("bob")
    bob.send("/join general")
    bob.wait_for("you joined #general")
    send(ada, "before 1")
    wait_shown(ada, ["ada: before 1"])
    bob.send("before 2")
    wait_shown(ada, ["ada: before 1", "bob: before 2"])
    url = ada.url
    ada.goto("about:blank")
    bob.wait_for("ada quit")
    bob.send("missed 1")
    bob.send("missed 2")
    bob.wait_for("<bob> missed 2")
    ada.goto(url)
    wait_joined(ada)
    expected = ["ada: before 1", "bob: before 2", "bob: missed 1", "bob: missed 2"]
    lines = wait_shown(ada, expected)
    ada.wait_for_timeout(500)  # a late duplicate would show by now
    lines = shown(ada)
    assert lines == expected, lines
    seqs = ada.evaluate(
        "[...document.querySelectorAll('ol[data-window=\"/ #general\"] li.msg')].map(li => Number(li.dataset.seq))"
    )
    assert seqs == [1, 2, 3, 4]
    # The seqs came from sessionStorage: the CONNECT carried `since`.
    stored = ada.evaluate("JSON.parse(sessionStorage.getItem('chat.session.v1'))")
    assert stored["nick"] == "ada" and stored["nss"]["/"]["since"]["general"] == 4
    assert stored["nss"]["/"]["outbox"] == []
    assert "password" not in str(stored)


def test_the_server_restarts_under_an_open_page_and_nothing_is_lost(pages, chat_server):
    ada = pages.open("ada")
    cid = pages.open("cid")
    wait_joined(ada)
    wait_joined(cid)
    send(ada, "before the restart")
    wait_shown(cid, ["ada: before the restart"])
    chat_server.stop()
    ada.wait_for_function("() => document.getElementById('status').dataset.state !== 'open'")
    send(ada, "while down 1")
    send(ada, "while down 2")
    assert shown(ada)[-2:] == ["PENDING ada: while down 1", "PENDING ada: while down 2"]
    outbox = ada.evaluate("JSON.parse(sessionStorage.getItem('chat.session.v1')).nss['/'].outbox")
    assert [e["text"] for e in outbox] == ["while down 1", "while down 2"]
    chat_server.start()
    expected = ["ada: before the restart", "ada: while down 1", "ada: while down 2"]
    for page in (ada, cid):
        lines = wait_shown(page, expected, timeout=15)
        page.wait_for_timeout(300)
        assert shown(page) == expected, shown(page)
    assert ada.locator(f'ol[data-window="{GENERAL}"] li.sys.conn').filter(has_text="reconnected").count() >= 1
    assert ada.evaluate("JSON.parse(sessionStorage.getItem('chat.session.v1')).nss['/'].outbox") == []


def test_a_page_reloaded_while_the_server_is_down_sends_its_unacked_messages_once(proxied_pages, chat_server):
    # The page comes from the page server, which stays up (as a copy served from elsewhere
    # would): a page served by chat-server cannot be reloaded while it is down.
    ada = proxied_pages.open("ada")
    cid = proxied_pages.open("cid")
    wait_joined(ada)
    wait_joined(cid)
    chat_server.stop()
    ada.wait_for_function("() => document.getElementById('status').dataset.state !== 'open'")
    send(ada, "typed before the reload")
    ada.reload()
    # Shown again from sessionStorage, still pending.
    ada.wait_for_function(
        "() => [...document.querySelectorAll('li.msg.pending .text')].some(e => e.textContent === 'typed before the reload')"
    )
    chat_server.start()
    for page in (ada, cid):
        wait_shown(page, ["ada: typed before the reload"], timeout=15)
    ada.wait_for_timeout(300)
    assert shown(ada) == ["ada: typed before the reload"]
    assert shown(cid) == ["ada: typed before the reload"]


def test_a_message_acked_before_a_lost_connection_is_not_repeated(pages, chat_server):
    """A cid re-sent after a reconnect is stored once: the page drops its pending copy."""
    ada = pages.open("ada")
    wait_joined(ada)
    # Send, and restart the server before the page can see the ack; the re-send after the
    # reconnect is acked with the stored message, shown once.
    ada.evaluate("""() => {
        const c = chatPage.client;
        const ns = c.namespaces.get('/');
        const entry = c.send('/', 'general', 'maybe twice');
        // Keep it pending as if the ack were lost: send it once more ourselves with its cid.
        ns.socket.request('message', {room: 'general', text: entry.text, cid: entry.cid});
    }""")
    wait_shown(ada, ["ada: maybe twice"])
    chat_server.restart()
    wait_joined(ada)
    ada.wait_for_function("() => document.getElementById('status').dataset.state === 'open'")
    ada.wait_for_timeout(500)
    assert shown(ada) == ["ada: maybe twice"]


@pytest.mark.parametrize("transport", [None, "polling"])
def test_a_join_whose_answer_a_lost_connection_took_is_made_again(pages, terminal, transport):
    """A join asked for (a link's room, or /join) whose answer never came because the
    connection dropped is made again once connected: the page is in the room, not left on
    the namespace's window (a polling session closed under a first join did that). The
    session the page gave up on is closed on the server at once, over long-polling too, so
    the nick is free for the next one (it was held until the server's ping timeout, 45 s)."""
    ada = pages.open("ada", transport=transport)
    wait_joined(ada)
    bob = terminal("bob")
    bob.send("/join other")
    bob.wait_for("you joined #other")
    ada.evaluate("""() => {
        chatPage.join('/', 'other', true);
        chatPage.client.manager.engine.end('dropped by the test');
    }""")
    wait_joined(ada, "/ #other")
    lines = ada.evaluate(
        "[...document.querySelectorAll('ol[data-window=\"/ #general\"] li')].map(li => li.textContent)"
    )
    assert any("joining once reconnected" in line for line in lines), lines
    send(ada, "back in")
    bob.wait_for("<ada> back in")
    # Both rooms are joined once: the reconnect rejoined #general from `since`.
    rooms = ada.evaluate("chatPage.client.rooms('/')")
    assert sorted(rooms) == ["general", "other"], rooms


def test_a_resuming_page_waits_out_the_servers_hold_on_its_nick(pages):
    """After a drop the server did not see, it keeps the old session (and the nick) until its
    ping timeout: the page's `nick_taken` retries, 2 s apart, outlast that (they gave up after
    10 s, and the page fell back to its login form)."""
    page = pages.open(None)
    retries = page.evaluate(
        """async () => {
            const { ChatClient } = await import('/chat.js');
            const c = new ChatClient({ base: location.origin });
            const out = { none: c.nickRetries() };
            c.manager.engine = { silenceMs: 25000 + 20000 };
            out.defaults = c.nickRetries();
            c.manager.engine = { silenceMs: 5000 + 60000 };
            out.longer = c.nickRetries();
            return out;
        }"""
    )
    assert retries["defaults"] * 2 > 45 and retries["none"] * 2 > 45, retries
    assert retries["longer"] * 2 > 65, retries


def test_older_history_loads_when_scrolling_up(pages):
    ada = pages.open("ada")
    wait_joined(ada)
    ada.evaluate("() => { for (let i = 1; i <= 70; i++) chatPage.client.send('/', 'general', `m${i}`); }")
    wait_shown(ada, ["ada: m70"], timeout=15)
    cid = pages.open("cid", height=500)
    wait_joined(cid)
    wait_shown(cid, ["ada: m70"])
    assert len(shown(cid)) == 50  # the join reply's history
    # PageUp from the message input scrolls; at the top the older messages load.
    for _ in range(40):
        cid.locator("#composer").press("PageUp")
        cid.wait_for_timeout(50)
        if len(shown(cid)) == 70:
            break
    assert shown(cid) == [f"ada: m{i}" for i in range(1, 71)]
    cid.wait_for_selector("li.beginning", state="attached")


def test_a_window_keeps_its_newest_messages_and_reloads_the_older(pages):
    ada = pages.open("ada", height=500)
    wait_joined(ada)
    ada.evaluate("() => { chatPage.maxShown = 30; }")
    ada.evaluate("() => { for (let i = 1; i <= 40; i++) chatPage.client.send('/', 'general', `m${i}`); }")
    wait_shown(ada, ["ada: m40"], timeout=15)
    # Past 30, the oldest went down to 24 (80 %); the rest are still there, in order.
    lines = shown(ada)
    assert 24 <= len(lines) <= 30 and lines == [f"ada: m{i}" for i in range(41 - len(lines), 41)]
    log = ada.locator(f'ol[data-window="{GENERAL}"]')
    for _ in range(20):
        log.evaluate("el => { el.scrollTop = 0; }")
        ada.wait_for_timeout(100)
        if shown(ada)[0] == "ada: m1":
            break
    assert shown(ada) == [f"ada: m{i}" for i in range(1, 41)]


def test_a_registered_nick_gives_its_password_in_a_field_never_the_link(pages):
    # Register dora from the login form (nick and password typed, not in the address).
    dora = pages.open(None)
    dora.locator("#login-nick").fill("dora")
    dora.locator("#login-password").fill("correct horse")
    dora.locator("#login-remember").check()
    dora.locator("#login-password").press("Enter")
    wait_joined(dora)
    # A link to her nick: refused (registered), and the page asks for the password in a field.
    other = pages.open("dora")
    other.wait_for_selector("#login:not([hidden])")
    assert "password is required" in other.locator("#login-error").text_content()
    assert other.evaluate("document.activeElement.id") == "login-password"
    other.locator("#login-password").fill("correct horse")
    other.locator("#login-password").press("Enter")
    wait_joined(other)
    send(other, "from my second device")
    wait_shown(dora, ["dora: from my second device"])
    # Only the nick is remembered (it was asked for); no password in any storage.
    for page in (dora, other):
        stored = page.evaluate("JSON.stringify({...localStorage}) + JSON.stringify({...sessionStorage})")
        assert "correct horse" not in stored
    assert dora.evaluate("localStorage.getItem('chat.nick')") == "dora"
    # A password in a link is never used, and goes from the address bar.
    linked = pages.open("dora", password="correct horse")
    linked.wait_for_selector("#login-error:not([hidden])")
    assert "correct" not in linked.url and "password" not in linked.url
    assert linked.locator("#login-password").input_value() == ""


@pytest.mark.parametrize("server_args", [["--admins", "ada"]])
def test_an_operator_kicks_from_the_page_and_the_room_sees_it(pages, terminal):
    # Ada registers from the login form and creates #general: she is its operator.
    ada = pages.open(None)
    ada.locator("#login-nick").fill("ada")
    ada.locator("#login-password").fill("correct horse")
    ada.locator("#login-password").press("Enter")
    wait_joined(ada)
    bob = terminal("bob")
    bob.send("/join general")
    bob.wait_for("you joined #general")
    ada.wait_for_function("() => document.querySelectorAll('#members li').length === 2")
    assert ada.locator("#members").inner_text().split() == ["@ada", "bob"]
    send(ada, "/kick bob too loud")
    ada.wait_for_function(
        """() => [...document.querySelectorAll('li.sys .text')]
                 .some(t => t.textContent === 'ada kicked bob (too loud)')"""
    )
    ada.wait_for_function("() => document.querySelectorAll('#members li').length === 1")
    bob.wait_for("you were kicked from #general by ada (too loud)")
    # A guest cannot: the server's refusal is shown.
    bob.send("/join general")
    bob.wait_for("you joined #general")
    bob.send("/kick ada")
    bob.wait_for("kick of ada refused: only operators of general")
    # Ada is a server admin: /delete by nick and words blanks the line; /resetpass never
    # shows the password, not even in the server's refusal (bob is a guest).
    bob.send("buy cheap pills")
    wait_shown(ada, ["bob: buy cheap pills"])
    send(ada, "/delete bob CHEAP")
    wait_shown(ada, ["bob: (message deleted by ada)"])
    bob.wait_for("ada deleted message #")
    send(ada, "/resetpass bob s3cret-pw")
    ada.wait_for_function(
        """() => [...document.querySelectorAll('li.sys .text')]
                 .some(t => t.textContent === '/resetpass: bob is not registered')"""
    )
    assert "s3cret-pw" not in ada.locator("body").inner_text()
    assert ada.locator("#composer").input_value() == ""
    # A page kicked keeps the room's window; joining again says so.
    cid = pages.open("cid")
    wait_joined(cid)
    send(ada, "/kick cid")
    cid.wait_for_function(
        "() => document.querySelector('ol[data-window=\"/ #general\"]').textContent.includes('you were kicked from #general')"
    )
    send(cid, "/join #general")
    cid.wait_for_function(
        "() => document.querySelector('ol[data-window=\"/ #general\"]').textContent.split('you joined #general').length === 3"
    )


def test_another_namespace_from_the_link_and_the_side_panel(pages):
    ada = pages.open("ada", room="ops", ns="/team")
    wait_joined(ada, "/team #ops")
    send(ada, "in the team namespace")
    wait_shown(ada, ["ada: in the team namespace"], window="/team #ops")
    ada.locator("#ns-name").fill("/games")
    ada.locator("#ns-name").press("Enter")
    ada.wait_for_function("() => chatPage.client.isConnected('/games')")
    ada.locator("#join-room").fill("#chess")
    ada.locator("#join-room").press("Enter")
    wait_joined(ada, "/games #chess")
    send(ada, "e4")
    wait_shown(ada, ["ada: e4"], window="/games #chess")
    assert ada.locator("#window-list button").all_inner_texts() == [
        "/games", "#chess", "/team", "#ops",
    ]


def test_the_page_runs_under_the_strict_csp(pages, chat_server):
    """The page works under the CSP chat-server sends with it (every test fails on a CSP
    report in the console), and the policy is really in force."""
    ada = pages.open(None)
    response = ada.reload()
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    ada = pages.open("ada")
    wait_joined(ada)
    assert ada.evaluate("document.querySelectorAll('[style], script:not([src])').length") == 0
    assert ada.evaluate("[...document.querySelectorAll('*')].flatMap(e => [...e.attributes]).filter(a => a.name.startsWith('on')).length") == 0
    violated = ada.evaluate(
        """url => new Promise(resolve => {
            document.addEventListener('securitypolicyviolation', e => resolve(e.effectiveDirective));
            try { new WebSocket(url); } catch (e) { resolve('connect-src (thrown)'); }
            setTimeout(() => resolve(null), 2000);
        })""",
        f"ws://127.0.0.1:{free_port()}/socket.io/?EIO=4&transport=websocket",
    )
    assert violated and violated.startswith("connect-src")
    pages.consoles[ada].clear()  # the violation was provoked on purpose


def test_a_namespace_key_is_typed_not_linked(browser, tmp_path):
    config = tmp_path / "chat.toml"
    config.write_text('[[namespace]]\nname = "/ops"\nkey = "change-me"\n')
    server = ChatServer(tmp_path, ["--config", str(config)])
    static = PageServer(server)
    p = Pages(browser, static.url)
    try:
        ada = p.open("ada")
        wait_joined(ada)
        ada.locator("#composer").fill("/ns /ops")
        ada.locator("#composer").press("Enter")
        ada.wait_for_selector('ol[data-window="/ops *"] li.sys.error')
        assert "requires a key" in ada.locator('ol[data-window="/ops *"]').inner_text()
        ada.locator("#composer").fill("/ns /ops change-me")
        ada.locator("#composer").press("Enter")
        ada.wait_for_function("() => chatPage.client.isConnected('/ops')")
        ada.locator("#composer").fill("/join secret")
        ada.locator("#composer").press("Enter")
        wait_joined(ada, "/ops #secret")
    finally:
        p.close()
        static.stop()
        server.stop()


def test_the_page_talks_to_another_server_with_the_server_parameter(browser, chat_server):
    """`?server=http://HOST:PORT`: the page from one origin, the chat on another (the CSP
    must then allow that origin; tests and development only)."""
    csp = CSP.replace(
        "connect-src 'self'",
        f"connect-src 'self' {chat_server.http_url} {chat_server.ws_url}",
    )
    static = PageServer(chat_server, csp=csp)
    try:
        p = Pages(browser, static.url)
        try:
            ada = p.open("ada", server=chat_server.http_url)
            wait_joined(ada)
            send(ada, "direct")
            wait_shown(ada, ["ada: direct"])
            assert not any("/socket.io" in r for r in static.requests)
        finally:
            p.close()
    finally:
        static.stop()


@pytest.mark.parametrize("server_args", [["--ping-interval-ms", "300", "--ping-timeout-ms", "300"]])
def test_pings_are_answered_and_a_silent_server_is_noticed(pages, chat_server):
    ada = pages.open("ada")
    wait_joined(ada)
    ada.evaluate("() => { window.states = []; chatPage.client.on('state', s => states.push(s)); }")
    ada.wait_for_timeout(1500)  # five pings, each answered in time, or the server would close
    assert ada.evaluate("states") == []
    os.kill(chat_server.proc.pid, signal.SIGSTOP)  # the server goes silent, its socket open
    try:
        ada.wait_for_function("() => states.some(s => s.state === 'down')", timeout=3000)
    finally:
        os.kill(chat_server.proc.pid, signal.SIGCONT)
    reasons = ada.evaluate("states.filter(s => s.state === 'down').map(s => s.reason)")
    assert "ping timeout: the server went silent" in reasons
    ada.wait_for_function("() => states.length > 0 && states[states.length - 1].state === 'open'", timeout=10000)
    wait_joined(ada)
    send(ada, "still here")
    wait_shown(ada, ["ada: still here"])


def test_a_busy_refusal_is_retried_with_a_growing_delay(pages):
    refused: list[float] = []
    busy = '44{"message":"the server is busy checking passwords: retry in a moment","data":{"code":"busy"}}'

    def route(ws):
        server = ws.connect_to_server()

        def from_page(message):
            # The first two CONNECTs are answered "busy" here; the server never sees them.
            if isinstance(message, str) and message.startswith("40") and len(refused) < 2:
                refused.append(time.monotonic())
                ws.send(busy)
            else:
                server.send(message)

        ws.on_message(from_page)

    ada = pages.open("ada", before=lambda page: page.route_web_socket("**/socket.io/**", route))
    wait_joined(ada)
    assert len(refused) == 2
    assert refused[1] - refused[0] >= 0.25  # 0.5 s times a jitter of 0.5 to 1
    retries = ada.locator('ol[data-window="/ *"] li.sys').filter(has_text="trying again in")
    assert retries.count() == 2


def needs_polling(server) -> None:
    if not server.supports_polling():
        pytest.skip("this chat-server does not serve Engine.IO long-polling yet (it answers 400)")


def chat_both_ways(page: Page, bob) -> None:
    send(page, "over polling")
    bob.wait_for("<ada> over polling")
    bob.send("back to you")
    wait_shown(page, ["ada: over polling", "bob: back to you"])


@pytest.mark.parametrize("server_args", [["--ping-interval-ms", "300", "--ping-timeout-ms", "300"]])
def test_polling_only_mode_chats(proxied_pages, terminal, chat_server, page_server):
    needs_polling(chat_server)
    bob = terminal("bob")
    bob.send("/join general")
    bob.wait_for("you joined #general")
    ada = proxied_pages.open("ada", transport="polling")
    wait_joined(ada)
    assert ada.locator("#status").text_content() == "connected (long-polling)"
    # Pings come in a GET, pongs go in a POST: five of them and the session stays.
    ada.evaluate("() => { window.states = []; chatPage.client.on('state', s => states.push(s)); }")
    ada.wait_for_timeout(1500)
    assert ada.evaluate("states") == []
    chat_both_ways(ada, bob)
    assert not any("transport=websocket" in r for r in page_server.requests)
    assert any(r.startswith("POST /socket.io/?EIO=4&transport=polling&sid=") for r in page_server.requests)


def test_polling_only_mode_chats_straight_to_chat_server(pages, terminal, chat_server):
    """The same without the page server in between: the browser's own keep-alive connections
    to chat-server carry the held GET and the POSTs."""
    needs_polling(chat_server)
    bob = terminal("bob")
    bob.send("/join general")
    bob.wait_for("you joined #general")
    ada = pages.open("ada", transport="polling")
    wait_joined(ada)
    assert ada.locator("#status").text_content() == "connected (long-polling)"
    chat_both_ways(ada, bob)


@pytest.mark.parametrize("websocket_policy", ["block"])
def test_without_websockets_the_page_falls_back_to_polling(proxied_pages, terminal, chat_server):
    needs_polling(chat_server)
    bob = terminal("bob")
    bob.send("/join general")
    bob.wait_for("you joined #general")
    ada = proxied_pages.open("ada")
    wait_joined(ada)
    chat_both_ways(ada, bob)
    # The upgrade was tried (and refused): still on long-polling.
    assert ada.locator("#status").text_content() == "connected (long-polling)"


@pytest.mark.parametrize("websocket_policy", ["block-new"])
def test_a_polling_session_upgrades_to_websocket(proxied_pages, terminal, chat_server, page_server):
    needs_polling(chat_server)
    bob = terminal("bob")
    bob.send("/join general")
    bob.wait_for("you joined #general")
    ada = proxied_pages.open("ada")
    wait_joined(ada)
    ada.wait_for_function(
        "() => document.getElementById('status').textContent === 'connected (WebSocket)'"
    )
    assert any("transport=websocket&sid=" in r for r in page_server.requests)
    chat_both_ways(ada, bob)


SHOTS = [(360, 740, "light"), (360, 740, "dark"), (1440, 900, "light"), (1440, 900, "dark")]


def test_screenshots(pages, terminal):
    """Screenshots at 360 and 1440 px, light and dark, under target/web-screenshots/ (and
    copied to docs/screenshots/ when UPDATE_SCREENSHOTS=1: `just screenshots`)."""
    bob = terminal("bob")
    bob.send("/join general")
    bob.wait_for("you joined #general")
    bob.send("/topic Release planning — Friday 15:00")
    bob.send("morning all! the build is green again")
    bob.send("ada, can you look at the polling fallback?")
    bob.send("/me pours coffee")
    bob.send("/join random")
    bob.wait_for("you joined #random")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    out = []
    for width, height, scheme in SHOTS:
        page = pages.open("ada", width=width, height=height, scheme=scheme)
        wait_joined(page)
        wait_shown(page, ["bob: ada, can you look at the polling fallback?"])
        page.evaluate("chatPage.client.join('/', 'random')")
        page.wait_for_selector('button[data-key="/ #random"]', state="attached")
        bob.send("/join random")
        bob.send("anyone for lunch?")
        bob.send("/msg ada the release notes are in the wiki")
        page.wait_for_selector('button[data-key="/ #random"] .badge.unread', state="attached")
        page.wait_for_selector('button[data-key="/ @bob"] .badge.mention', state="attached")
        if (width, scheme) == (360, "light"):
            send(page, "on it: a line\nand a second line")
            wait_shown(page, ["ada: on it: a line\nand a second line"])
        page.wait_for_timeout(200)
        name = f"chat-{width}-{scheme}.png"
        page.screenshot(path=str(SCREENSHOTS / name))
        out.append(name)
        if width == 360:
            page.locator("#toggle-rooms").click()
            page.wait_for_timeout(100)
            name = f"chat-{width}-{scheme}-rooms.png"
            page.screenshot(path=str(SCREENSHOTS / name))
            out.append(name)
        if (width, scheme) == (1440, "dark"):
            page.keyboard.press("Control+k")
            page.locator("#switcher-input").type("r")
            name = f"chat-{width}-{scheme}-switcher.png"
            page.screenshot(path=str(SCREENSHOTS / name))
            out.append(name)
        page.context.close()
    login = pages.open(None, width=360, height=740)
    login.wait_for_selector("#login-nick")
    name = "chat-360-light-login.png"
    login.screenshot(path=str(SCREENSHOTS / name))
    out.append(name)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        docs = ROOT / "docs" / "screenshots"
        docs.mkdir(parents=True, exist_ok=True)
        for name in out:
            shutil.copy(SCREENSHOTS / name, docs / name)
