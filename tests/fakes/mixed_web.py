"""A small world for the web-search stage without an LLM: items known only by a shop's
ASIN, a catalog, and the web pages a :class:`~tests.fakes.searxng_server.FakeSearxng`
serves for them, mixed with junk and unrelated real products (its ``decoys``).

Eight items have a counterpart in the catalog; four name a product the catalog lacks
(the web knows it, so the right answer is "none"). The index alone finds nothing for
an ASIN: only the right page, which quotes the ASIN, agrees with the item.
"""

from __future__ import annotations

CATALOG = [
    ("w1", "Sony Bravia KDL-40W600 40 inch LED television"),
    ("w2", "Canon PIXMA MG3620 wireless inkjet printer"),
    ("w3", "Bose QuietComfort 35 wireless headphones II black"),
    ("w4", "Apple iPad Air 64GB WiFi space grey"),
    ("w5", "Philips Sonicare DiamondClean HX9352 electric toothbrush"),
    ("w6", "Garmin Forerunner 245 GPS running watch"),
    ("w7", "Logitech MX Master 3 wireless mouse graphite"),
    ("w8", "Samsung T7 portable SSD 1TB MU-PC1T0T blue"),
]
_ELSEWHERE = [  # real products the catalog does not hold
    "Nikon Coolpix P1000 digital camera",
    "Dyson V11 Absolute cordless vacuum",
    "Kindle Paperwhite 8GB e-reader",
    "JBL Flip 5 waterproof bluetooth speaker",
]
ITEMS = [(f"a{n}", f"ASIN B07X{n:02d}QR{n % 10}Z") for n in range(12)]
GOLD = {(f"a{n}", catalog_id) for n, (catalog_id, _) in enumerate(CATALOG)}

PAGES = [
    {
        "title": f"{name} | Shop",
        "url": f"https://shop.example/dp/{n}",
        "content": f"{text}. In stock, free delivery.",
    }
    for n, ((_, text), name) in enumerate(
        zip(ITEMS, [t for _, t in CATALOG] + _ELSEWHERE, strict=True)
    )
]
DECOYS = [
    {"title": f"{text} - Reviews", "url": f"https://reviews.example/{cid}", "content": ""}
    for cid, text in CATALOG
]


def precision_recall(predicted: set[tuple[str, str]]) -> tuple[float, float]:
    """Precision and recall of ``(item_id, catalog_id)`` pairs against :data:`GOLD`."""
    correct = len(predicted & GOLD)
    return (correct / len(predicted) if predicted else 1.0), correct / len(GOLD)
