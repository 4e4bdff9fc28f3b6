"""What a response body is: media types, Content-Encoding layers with capped output, and its charset."""

from __future__ import annotations

import codecs
import contextlib
import logging
import re
import zlib
from typing import Any

from charset_normalizer import from_bytes

from newsdedup.outcomes import Outcome

try:
    import brotli  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    brotli = None
if brotli is not None and not hasattr(brotli.Decompressor, "can_accept_more_data"):
    brotli = None  # before 1.2 its output cannot be capped: a brotli bomb would fill the memory
DECODE_ERRORS: tuple[type[Exception], ...] = (zlib.error, brotli.error) if brotli is not None else (zlib.error,)

logger = logging.getLogger(__name__)

TEXTUAL_TYPES = frozenset(
    {
        "text/html",
        "application/xhtml+xml",
        "text/xml",
        "application/xml",
        "application/rss+xml",
        "application/atom+xml",
        "application/rdf+xml",
        "application/json",
        "application/feed+json",
        "text/plain",
    }
)

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# Bodies that are a gzip file rather than gzip transfer coding: sitemaps published as .xml.gz.
GZIP_TYPES = frozenset({"application/gzip", "application/x-gzip", "application/gzip-compressed"})

ACCEPT_ENCODING = "gzip, deflate, br" if brotli is not None else "gzip, deflate"
SNIFF_BYTES = 4096


class Abort(Exception):
    """Stop processing a response with a given outcome (caught by the transport)."""

    def __init__(self, outcome: Outcome, error_class: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.error_class = error_class
        self.message = message


class ZlibLayer:
    """Incremental gzip/deflate decoder that never produces more than it is asked for."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._pending = b""  # a deflate header, or the start of the next gzip member, not yet complete
        self._obj: Any = None  # None: at the start of the stream or between gzip members
        self._members = 0
        self._finished = False

    # No flush(): decompress() already returns all available output, and a truncated stream
    # keeps what was decoded (as browsers and urllib3 do).

    def feed(self, data: bytes, max_out: int) -> bytes:
        """Decode what data completes, at most max_out bytes; members are walked in a loop, not recursively."""
        data, self._pending = self._pending + data, b""
        out = bytearray()
        while data and not self._finished and len(out) < max_out:
            if self._obj is None and not self._start(data):
                self._pending = data  # too short to tell: wait for the next chunk
                break
            if self._finished:
                break
            out += self._obj.decompress(data, max_out - len(out))
            if self._obj.unconsumed_tail or not self._obj.eof:
                break  # output limit reached (the caller aborts), or all input consumed
            data = self._obj.unused_data
            self._obj = None
            self._finished = self.kind != "gzip"  # only gzip has members; later bytes are ignored
        return bytes(out)

    def _start(self, data: bytes) -> bool:
        """Open a decoder for the stream or gzip member data starts; False when data is too short to tell."""
        if len(data) < 2:
            return False
        if self.kind == "gzip":
            if self._members and not data.startswith(b"\x1f\x8b"):
                self._finished = True  # trailing garbage after the last member is ignored, like browsers
            else:
                self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)  # a bad first header raises zlib.error
                self._members += 1
            return True
        # "deflate" should be zlib-wrapped, but many servers send raw deflate; sniff the header.
        cmf, flg = data[0], data[1]
        wrapped = cmf & 0x0F == 8 and (cmf * 256 + flg) % 31 == 0
        self._obj = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        return True


class BrotliLayer:
    """Incremental brotli decoder with capped output (only used when brotli 1.2 or later is installed)."""

    def __init__(self) -> None:
        self._obj = brotli.Decompressor()

    def feed(self, data: bytes, max_out: int) -> bytes:
        """Decode data, at most about max_out bytes (the caller aborts when the output reaches it)."""
        if self._obj.is_finished():
            return b""  # trailing bytes after the stream are ignored, as for gzip
        out = self._obj.process(data, output_buffer_limit=max_out)
        while len(out) < max_out and not self._obj.can_accept_more_data():
            out += self._obj.process(b"", output_buffer_limit=max_out - len(out))
        return out


class BodyDecoder:
    """Undo Content-Encoding layers incrementally, capping every layer's output."""

    def __init__(self, encodings: list[str], limit: int) -> None:
        self.limit = limit
        self.layers: list[Any] = []
        self._produced: list[int] = []
        # Encodings are listed in the order applied, so they are undone in reverse.
        for enc in reversed(encodings):
            if enc in ("gzip", "x-gzip"):
                self.layers.append(ZlibLayer("gzip"))
            elif enc == "deflate":
                self.layers.append(ZlibLayer("deflate"))
            elif enc == "br" and brotli is not None:
                self.layers.append(BrotliLayer())
            else:
                raise Abort(
                    Outcome.UNSUPPORTED_CONTENT_TYPE,
                    "UnsupportedContentEncoding",
                    f"unsupported Content-Encoding {enc!r}",
                )
            self._produced.append(0)

    def _through(self, data: bytes, start: int) -> bytes:
        for i in range(start, len(self.layers)):
            if not data:
                return b""
            room = self.limit - self._produced[i]
            data = self.layers[i].feed(data, room + 1)
            self._produced[i] += len(data)
            if self._produced[i] > self.limit:
                raise Abort(
                    Outcome.TOO_LARGE,
                    "DecompressedTooLarge",
                    f"decompressed body exceeds max_decompressed_bytes={self.limit}",
                )
        return data

    def feed(self, data: bytes) -> bytes:
        return self._through(data, 0)


def parse_content_type(value: str | None) -> tuple[str | None, str | None]:
    """Split a Content-Type header into (media type, charset parameter)."""
    if not value:
        return None, None
    media = re.split(r"[;,]", value, maxsplit=1)[0].strip().lower()
    match = re.search(r"""charset\s*=\s*["']?\s*([^"';,\s]+)""", value, re.IGNORECASE)
    return (media or None), (match.group(1) if match else None)


def is_textual(media_type: str) -> bool:
    """True for media types the pipeline can parse as text (HTML, XML feeds, JSON, plain)."""
    return media_type in TEXTUAL_TYPES or media_type.endswith("+xml") or media_type.endswith("+json")


def sniff_media_type(body: bytes) -> str:
    """Guess a media type for a response that sent no Content-Type."""
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if not head:
        return "text/plain"
    binary_magic = (b"%pdf", b"\x89png", b"gif8", b"\xff\xd8\xff", b"pk\x03\x04", b"\x1f\x8b")
    if head.startswith(binary_magic):
        return "application/pdf" if head.startswith(b"%pdf") else "application/octet-stream"
    if head.startswith(b"<?xml"):
        return "application/xml"
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in head:
        return "text/html"
    if head.startswith((b"{", b"[")):
        return "application/json"
    if b"\x00" in head:
        return "application/octet-stream"
    return "text/plain"


# --------------------------------------------------------------------------- charset handling

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_XML_DECL = re.compile(rb"""^\s*<\?xml[^>]{0,200}?encoding\s*=\s*["']([A-Za-z0-9._:+-]{1,40})""")
_META_CHARSET = re.compile(rb"""<meta\b[^>]{0,512}?charset\s*=\s*["']?\s*([A-Za-z0-9._:+-]{1,40})""", re.IGNORECASE)
# Browsers (WHATWG Encoding) decode these labels with the superset on the right.
_WHATWG_SUPERSETS = {
    "ascii": "cp1252",
    "iso8859-1": "cp1252",
    "iso8859-9": "cp1254",
    "iso8859-11": "cp874",
    "tis-620": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "euc_kr": "cp949",
    "shift_jis": "cp932",
}


def normalise_charset(label: str | None, *, in_document: bool = False) -> str | None:
    """Map a charset label to a Python codec name, or None if unknown/unusable."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    try:
        name = codecs.lookup(label).name
        b"\0".decode(name, "replace")  # rejects bytes-to-bytes codecs such as 'hex' or 'zlib'
    except (LookupError, ValueError):
        return None
    if name == "utf-7":
        return None  # never honoured by browsers; a known XSS vector
    if in_document and name.startswith(("utf-16", "utf-32")):
        return "utf-8"  # a document that can declare itself in ASCII is not UTF-16
    return _WHATWG_SUPERSETS.get(name, name)


def _declared_in_document(body: bytes) -> str | None:
    """Charset from the XML declaration or a <meta> tag in the first 4 KB."""
    head = body[:SNIFF_BYTES]
    match = _XML_DECL.match(head) or _META_CHARSET.search(head)
    if not match:
        return None
    return normalise_charset(match.group(1).decode("ascii", "replace"), in_document=True)


def _is_utf8_with_non_ascii(body: bytes) -> bool:
    """True when body has non-ASCII bytes that form valid UTF-8 (a strong signal)."""
    if body.isascii():
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def decode_body(body: bytes, header_charset: str | None = None) -> tuple[str, str]:
    """Decode body: BOM, header charset, in-document declaration, detection, then UTF-8."""
    for bom, codec in _BOMS:
        if body.startswith(bom):
            name = "utf-8" if codec == "utf-8-sig" else codec
            return body.decode(codec, errors="replace"), name
    declared = (normalise_charset(header_charset), _declared_in_document(body))
    for charset in declared:
        if charset is None:
            continue
        if charset != "utf-8" and _is_utf8_with_non_ascii(body):
            # Legacy-charset text is almost never valid multi-byte UTF-8: the label is wrong.
            return body.decode("utf-8"), "utf-8"
        try:
            return body.decode(charset), charset
        except UnicodeDecodeError:
            logger.debug("declared charset %s does not decode the body; trying next", charset)
    if body.isascii():
        return body.decode("ascii"), "ascii"
    best = from_bytes(body).best()
    if best is not None and best.encoding:
        charset = normalise_charset(best.encoding) or best.encoding
        with contextlib.suppress(UnicodeDecodeError, LookupError):
            return body.decode(charset), charset
    return body.decode("utf-8", errors="replace"), "utf-8"
