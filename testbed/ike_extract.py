#!/usr/bin/env python3
"""Helpers for testbed/ike_capture.sh (stdlib only; `verify` runs tshark).

  split PCAP OUTDIR      IKE messages of a tcpdump capture -> NN-*.bin + messages.txt
  keys LOG OUTDIR ...    keys from the initiator's charon log (ike/chd level 4)
                         -> keys.txt, ikev2_decryption_table, esp_sa
  verify DIR             tshark with DIR's key tables: decrypted payloads per IKE message
  readme DIR ...         DIR/README
"""
import os, re, struct, subprocess, sys, tempfile

RESPONDER = "198.51.100.69"
EXCH = {34: "ike_sa_init", 35: "ike_auth", 36: "create_child_sa", 37: "informational"}
PAYLOAD = {0: "-", 33: "SA", 34: "KE", 35: "IDi", 36: "IDr", 37: "CERT", 38: "CERTREQ",
           39: "AUTH", 40: "Ni/Nr", 41: "N", 42: "D", 43: "V", 44: "TSi", 45: "TSr",
           46: "SK", 47: "CP", 48: "EAP", 53: "SKF"}


def packets(path):
    """(time, src, dst, sport, dport, udp payload) of each IPv4/UDP frame."""
    data = open(path, "rb").read()
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nsec = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        t = sec + frac / (1e9 if nsec else 1e6)
        if linktype == 1:
            if len(frame) < 14 or frame[12:14] != b"\x08\x00":
                continue
            ip = frame[14:]
        elif linktype == 113:  # Linux cooked
            ip = frame[16:]
        else:
            ip = frame
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 15) * 4
        tot = struct.unpack(">H", ip[2:4])[0]
        udp = ip[ihl:tot]
        sport, dport, ulen = struct.unpack(">HHH", udp[:6])
        yield t, ".".join(map(str, ip[12:16])), ".".join(map(str, ip[16:20])), sport, dport, udp[8:ulen]


def ike_messages(path):
    for t, src, dst, sport, dport, pl in packets(path):
        if 4500 in (sport, dport):
            if len(pl) < 4 or pl[:4] != b"\0\0\0\0":
                continue  # ESP in UDP or NAT keepalive (0xff)
            pl = pl[4:]
        elif 500 not in (sport, dport):
            continue
        if len(pl) < 28:
            continue
        yield t, src, dst, sport, dport, pl


def split(pcap, outdir):
    rows = []
    t0 = None
    for n, (t, src, dst, sport, dport, m) in enumerate(ike_messages(pcap), 1):
        t0 = t if t0 is None else t0
        spi_i, spi_r, nxt, ver, exch, flags, mid, length = struct.unpack(">8s8sBBBBII", m[:28])
        assert length == len(m), (n, length, len(m))
        kind = "resp" if flags & 0x20 else "req"
        frm = "r" if src == RESPONDER else "i"
        frag = ""
        if nxt == 53:
            fnum, ftot = struct.unpack(">HH", m[32:36])
            frag = f"-frag{fnum}of{ftot}"
        name = f"{n:02d}-{EXCH.get(exch, 'exch%d' % exch)}-{kind}-{frm}{frag}.bin"
        open(os.path.join(outdir, name), "wb").write(m)
        fl = "".join(c for b, c in ((0x08, "I"), (0x10, "V"), (0x20, "R")) if flags & b) or "-"
        rows.append(f"{name:44} {t - t0:7.3f}s {src}:{sport} -> {dst}:{dport} "
                    f"spi_i={spi_i.hex()} spi_r={spi_r.hex()} msgid={mid} flags={fl} "
                    f"first={PAYLOAD.get(nxt, nxt)} len={length}")
    with open(os.path.join(outdir, "messages.txt"), "w") as f:
        f.write("# file  time  src -> dst (as seen on srv's link)  IKE header fields  first payload  length\n")
        f.write("\n".join(rows) + "\n")


# ---------------------------------------------------------------- keys
HDR = re.compile(r"^\d+\[(IKE|CHD)\] (.+?) => (\d+) bytes @ \S+$")
DUMP = re.compile(r"^\d+\[(?:IKE|CHD)\]\s+\d+: ((?:[0-9A-F]{2} ){1,16})")
EST = re.compile(r"^\d+\[IKE\] (?:outbound )?CHILD_SA \S+ established with SPIs ([0-9a-f]{8})_i ([0-9a-f]{8})_o")


def log_items(path):
    """('secret', name, bytes) and ('child', spi_in, spi_out) in log order."""
    lines = open(path, errors="replace").read().splitlines()
    i = 0
    while i < len(lines):
        m = HDR.match(lines[i])
        if m:
            n = int(m.group(3))
            hexs = ""
            j = i + 1
            while len(hexs) < 2 * n and j < len(lines):
                d = DUMP.match(lines[j])
                if not d:
                    break
                hexs += d.group(1).replace(" ", "")
                j += 1
            if len(hexs) != 2 * n:
                raise SystemExit(f"{path}:{i + 1}: dump of {m.group(2)} has {len(hexs) // 2} of {n} bytes")
            yield "secret", m.group(2), bytes.fromhex(hexs)
            i = j
            continue
        e = EST.match(lines[i])
        if e:
            yield "child", e.group(1), e.group(2)
        i += 1


IKE_NAMES = {"shared Diffie Hellman secret": "g_ir", "SKEYSEED": "skeyseed", "Sk_d secret": "sk_d",
             "Sk_ai secret": "sk_ai", "Sk_ar secret": "sk_ar", "Sk_ei secret": "sk_ei",
             "Sk_er secret": "sk_er", "Sk_pi secret": "sk_pi", "Sk_pr secret": "sk_pr"}
AUTH_NAMES = {"IDx'": "idx", "SK_p": "sk_p", "octets = message + nonce + prf(Sk_px, IDx')": "octets",
              "prf(secret, keypad)": "prf_psk_keypad", "AUTH = prf(prf(secret, keypad), octets)": "auth"}
CHILD_NAMES = {"seed": "seed", "encryption initiator key": "encr_i", "encryption responder key": "encr_r",
               "integrity initiator key": "integ_i", "integrity responder key": "integ_r"}

WS_IKE_ENCR = {"aes128gcm16": "AES-GCM-128 with 16 octet ICV [RFC5282]", "aes256": "AES-CBC-256 [RFC3602]",
               "aes128": "AES-CBC-128 [RFC3602]"}
WS_IKE_INTEG = {"sha256": "HMAC_SHA2_256_128 [RFC4868]", None: "NONE [RFC4306]"}
WS_ESP_ENCR = {"aes128gcm16": "AES-GCM [RFC4106]", "aes128": "AES-CBC [RFC3602]", "aes256": "AES-CBC [RFC3602]"}
WS_ESP_INTEG = {"sha256": "HMAC-SHA-256-128 [RFC4868]", None: "NULL"}  # Wireshark 4.0: AES-GCM only with NULL


def split_proposal(p):
    parts = p.split("-")
    integ = next((x for x in parts[1:] if x.startswith("sha")), None)
    return parts[0], integ


def keys(log, outdir, ike_prop, esp_prop):
    msgs = [l.split() for l in open(os.path.join(outdir, "messages.txt")) if not l.startswith("#")]
    ike_spis = []
    init_addr = None
    for m in msgs:
        f = dict(x.split("=", 1) for x in m if "=" in x)
        if f["spi_r"] != "0" * 16 and (f["spi_i"], f["spi_r"]) not in ike_spis:
            ike_spis.append((f["spi_i"], f["spi_r"]))
        if m[0].endswith("-i.bin") or "-i-frag" in m[0]:
            init_addr = m[2].rsplit(":", 1)[0]
    ikes, children = [], []
    auth_side = 0
    pending = {}
    for kind, a, b in log_items(log):
        if kind == "secret":
            if a == "shared Diffie Hellman secret" and (not ikes or "sk_d" in ikes[-1]):
                ikes.append({})
                auth_side = 0
            if a in IKE_NAMES and ikes:
                ikes[-1][IKE_NAMES[a]] = b
            elif a in AUTH_NAMES and ikes:
                if a == "IDx'":
                    auth_side += 1
                ikes[-1]["auth_%s.%s" % ("i" if auth_side == 1 else "r", AUTH_NAMES[a])] = b
            elif a in CHILD_NAMES:
                pending[CHILD_NAMES[a]] = b
        elif kind == "child" and pending:
            pending["spi_i"], pending["spi_r"] = a, b  # initiator (h1) inbound / outbound
            children.append(pending)
            pending = {}
    if len(ikes) != len(ike_spis):
        raise SystemExit(f"{len(ikes)} IKE key sets in the log but {len(ike_spis)} IKE SAs on the wire")
    ienc, iinteg = split_proposal(ike_prop)
    eenc, einteg = split_proposal(esp_prop)
    out = ["# Keys of every SA in this capture, from the initiator's (h1) charon log at",
           "# ike/chd level 4 (strongSwan 5.9.8 has no save-keys plugin in Debian).",
           "# ikeN = Nth IKE SA on the wire (N=2: after the IKE SA rekey, whose",
           "#   CREATE_CHILD_SA was initiated by h1, so i = h1 for every SA here).",
           "#   g_ir = shared (EC)DH secret; skeyseed; sk_* per RFC 7296 2.14 (for AES-GCM",
           "#   sk_ei/sk_er are 16-byte key + 4-byte salt, sk_ai/sk_ar are empty).",
           "#   auth_i.* / auth_r.*: AUTH computation (RFC 7296 2.15) of the initiator's",
           "#   own AUTH and of the responder's AUTH as verified by h1: idx = IDx'",
           "#   (ID payload body), sk_p = SK_pi/SK_pr, octets = signed octets, and for PSK",
           "#   prf_psk_keypad = prf(PSK, \"Key Pad for IKEv2\"), auth = AUTH data.",
           "# childN = Nth CHILD_SA: spi_i = SPI chosen by h1 (its inbound, in ESP from",
           "#   srv), spi_r = SPI chosen by srv (in ESP from h1); seed = Ni | Nr (| g^ir)",
           "#   used for KEYMAT; encr_i/integ_i protect i->r ESP (SPI spi_r), encr_r/",
           "#   integ_r r->i (SPI spi_i). AES-GCM keys: 16-byte key + 4-byte salt.", ""]
    ws_ike, ws_esp = [], []
    for n, (k, (si, sr)) in enumerate(zip(ikes, ike_spis), 1):
        out.append(f"ike{n}.spi_i = {si}")
        out.append(f"ike{n}.spi_r = {sr}")
        for name in ["g_ir", "skeyseed", "sk_d", "sk_ai", "sk_ar", "sk_ei", "sk_er", "sk_pi", "sk_pr"] + \
                sorted(x for x in k if x.startswith("auth_")):
            if name in k:
                out.append(f"ike{n}.{name} = {k[name].hex()}")
            elif name in ("sk_ai", "sk_ar"):
                out.append(f"ike{n}.{name} =")
        out.append("")
        ws_ike.append('%s,%s,%s,%s,"%s",%s,%s,"%s"' % (
            si, sr, k["sk_ei"].hex(), k["sk_er"].hex(), WS_IKE_ENCR[ienc],
            k.get("sk_ai", b"").hex(), k.get("sk_ar", b"").hex(), WS_IKE_INTEG[iinteg]))
    for n, c in enumerate(children, 1):
        out.append(f"child{n}.spi_i = {c['spi_i']}")
        out.append(f"child{n}.spi_r = {c['spi_r']}")
        for name in ("seed", "encr_i", "encr_r", "integ_i", "integ_r"):
            if name in c:
                out.append(f"child{n}.{name} = {c[name].hex()}")
        out.append("")
        for src, dst, spi, ek, ik in ((init_addr, RESPONDER, c["spi_r"], c["encr_i"], c.get("integ_i", b"")),
                                      (RESPONDER, init_addr, c["spi_i"], c["encr_r"], c.get("integ_r", b""))):
            ws_esp.append('"IPv4","%s","%s","0x%s","%s","0x%s","%s","0x%s"' % (
                src, dst, spi, WS_ESP_ENCR[eenc], ek.hex(), WS_ESP_INTEG[einteg], ik.hex()))
    open(os.path.join(outdir, "keys.txt"), "w").write("\n".join(out))
    open(os.path.join(outdir, "ikev2_decryption_table"), "w").write("\n".join(ws_ike) + "\n")
    open(os.path.join(outdir, "esp_sa"), "w").write("\n".join(ws_esp) + "\n")


# ---------------------------------------------------------------- verify
def tshark_pdml(d):
    import xml.etree.ElementTree as ET
    with tempfile.TemporaryDirectory() as cfg:
        for f in ("ikev2_decryption_table", "esp_sa"):
            open(os.path.join(cfg, f), "w").write(open(os.path.join(d, f)).read())
        open(os.path.join(cfg, "preferences"), "w").write("esp.enable_encryption_decode: TRUE\n")
        env = dict(os.environ, WIRESHARK_CONFIG_DIR=cfg)
        x = subprocess.run(["tshark", "-r", os.path.join(d, "capture.pcap"), "-T", "pdml"],
                           env=env, capture_output=True, check=True).stdout
    return ET.fromstring(x)


def verify(d):
    root = tshark_pdml(d)
    print("# tshark (Wireshark %s) with this directory's ikev2_decryption_table and esp_sa" %
          subprocess.run(["tshark", "--version"], capture_output=True, text=True).stdout.split()[2])
    print("# frame: direction, exchange, payloads in order (decrypted inner payloads after SK{...})")
    undecrypted = 0
    for pkt in root.iter("packet"):
        num = pkt.find("proto[@name='geninfo']/field[@name='num']").get("show")
        ip = pkt.find("proto[@name='ip']")
        src = ip.find("field[@name='ip.src']").get("show") if ip is not None else "?"
        who = "r->i" if src == RESPONDER else "i->r"
        isakmp = pkt.find("proto[@name='isakmp']")
        if isakmp is None:
            esp = pkt.find("proto[@name='esp']")
            if esp is not None:
                spi = esp.find(".//field[@name='esp.spi']").get("value")
                dec = esp.find(".//field[@name='esp.decrypted_data']")
                raw = bytes.fromhex(dec.get("value")) if dec is not None and dec.get("value") else b""
                if len(raw) >= 20 and raw[0] == 0x45:
                    what = "decrypted: inner IPv4 %s -> %s proto %d, %d bytes" % (
                        ".".join(map(str, raw[12:16])), ".".join(map(str, raw[16:20])), raw[9],
                        struct.unpack(">H", raw[2:4])[0])
                else:
                    what = "NOT decrypted"
                    undecrypted += 1
                print(f"frame {num:>3} {who} ESP spi=0x{spi} {what}")
            continue
        ex = isakmp.find("field[@name='isakmp.exchangetype']").get("showname").split(": ", 1)[1]
        parts, sk = [], 0
        for f in isakmp.iter("field"):
            n = f.get("name")
            sn = f.get("showname") or ""
            if n == "isakmp.typepayload":
                name = sn.split(": ", 1)[1].rsplit(" (", 1)[0]
                if name.startswith(("Proposal", "Transform")):
                    continue
                name = {"Encrypted and Authenticated": "SK{",
                        "Encrypted and Authenticated Fragment": "SKF{"}.get(name, name)
                sk += name.endswith("{")
                parts.append(name)
            elif n == "isakmp.notify.msgtype":
                parts[-1] += "(" + sn.split(": ", 1)[1].rsplit(" (", 1)[0] + ")"
            elif n == "isakmp.auth.method":
                parts[-1] += "(method " + f.get("show") + ")"
            elif n == "isakmp.auth.data.sig.asn1.data":
                parts[-1] += "[AlgorithmIdentifier DER " + f.get("value") + "]"
        text = ", ".join(parts).replace("{, ", "{") + "}" * sk
        if sk and isakmp.find(".//field[@name='isakmp.enc.decrypted']") is None:
            undecrypted += 1
            text += "  NOT decrypted"
        print(f"frame {num:>3} {who} {ex}: {text}")
    return undecrypted


def readme(d, scen, auth, ike, esp, frag, dpd):
    msgs = [l.split()[0] for l in open(os.path.join(d, "messages.txt")) if not l.startswith("#")]
    ts = open(os.path.join(d, "tshark-decrypted.txt")).read()
    ike_lines = [l.split(": ", 1)[1] for l in ts.splitlines() if l.startswith("frame") and " ESP spi=" not in l]
    listing = []
    req_note = ""
    for m, pl in zip(msgs, ike_lines):
        note = ""
        if "create_child_sa" in m:
            note = "CHILD_SA rekey" if "REKEY_SA" in pl else "IKE SA rekey" if "Key Exchange" in pl and "Traffic Selector" not in pl else "new CHILD_SA"
        elif "informational" in m:
            note = "delete" if "Delete" in pl else "DPD / liveness check (empty)" if pl.endswith("SK{}") else ""
        if "-resp-" in m and req_note:
            note = req_note + " response"
        elif "-req-" in m:
            req_note = note
        listing.append("  %s  %s%s" % (m, ("[" + note + "] ") if note else "", pl))
    pskline = 'PSK "spimux-test-only-psk" (IDs: initiator h1, responder gw; ID type FQDN)' if auth == "psk" else \
        f"certificates from tests/data/ike/pki/{auth}/ (IDs: h1.spimux.test, gw.spimux.test; auth = pubkey)"
    print(f"""{scen}: real strongSwan 5.9.8 (Debian 12) IKEv2 exchange, captured on the testbed
=====================================================================

Regenerate (root, from the repository root; the whole directory is rewritten,
new nonces, SPIs, DH values and keys every time):

    bash testbed/ike_capture.sh {scen}

Setup: testbed/topology.sh up + `kernel-nat on`: initiator charon on h1
(10.6.1.2, inner 10.98.0.2/32) behind the router's Linux NAT (public
203.0.113.10), responder charon on srv (198.51.100.69, inner 10.99.0.0/24),
both with kernel-libipsec. IKE_SA_INIT on UDP 500, then NAT-T (UDP 4500, the
4-byte non-ESP marker stripped in the .bin files). tcpdump on srv's link.

Configuration (exact files: initiator.swanctl.conf, responder.swanctl.conf,
strongswan.conf in this directory):
  IKE proposal   {ike}
  ESP proposal   {esp}
  auth           {pskline}
  traffic sel.   10.98.0.2/32 (h1) === 10.99.0.0/24 (srv), tunnel mode
  fragment_size  {frag} (charon.fragment_size; IKEv2 fragmentation = yes, the default)
  dpd_delay      {dpd if dpd != '0s' else '0s (off)'} on the initiator{' (mobike = no on both sides: the DPD is an EMPTY INFORMATIONAL; with MOBIKE, behind a NAT, strongSwan puts N(NATD_S_IP) N(NATD_D_IP) in every DPD)' if dpd != '0s' else ''}
  Two ESP pings (h1 -> 10.99.0.1) after IKE_AUTH{' and after the CHILD_SA rekey' if scen == 'psk-gcm-x25519' else ''}; they are in capture.pcap.

Files: NN-<exchange>-<req|resp>-<i|r>[-fragKofN].bin = the IKE message (IKE
header onwards) of the NNth IKE packet on the wire; i = sent by h1 (the
initiator of every SA here, so the IKE header's I flag is set exactly on
these), r = sent by srv; fragKofN = an RFC 7383 IKE fragment (SKF payload).
messages.txt has the header fields of each. keys.txt has every key (see its
header); ikev2_decryption_table and esp_sa hold the same keys in the format
of strongSwan's save-keys plugin (Wireshark's UAT files).

Messages:
""" + "\n".join(listing) + ("""

  (RFC 7383 fragments: each SKF fragment is encrypted and authenticated on its
  own, with the same keys; tshark decrypts each and shows the reassembled
  message's payloads on the last fragment, "SKF{}" on the others.)""" if any("-frag" in m for m in msgs) else "") + f"""

Decryption check (output in tshark-decrypted.txt; the same is printed by
`python3 testbed/ike_extract.py verify tests/data/ike/{scen}`):

    cfg=$(mktemp -d); cp ikev2_decryption_table esp_sa "$cfg"/
    echo 'esp.enable_encryption_decode: TRUE' >"$cfg"/preferences
    WIRESHARK_CONFIG_DIR=$cfg tshark -r capture.pcap -V

{ts}""")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "split":
        split(sys.argv[2], sys.argv[3])
    elif cmd == "keys":
        a = sys.argv[2:]
        keys(a[0], a[1], a[a.index("--ike-proposal") + 1], a[a.index("--esp-proposal") + 1])
    elif cmd == "verify":
        sys.exit(1 if verify(sys.argv[2]) else 0)
    elif cmd == "readme":
        readme(*sys.argv[2:9])
    else:
        sys.exit(__doc__)
