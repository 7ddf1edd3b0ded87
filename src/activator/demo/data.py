"""Deterministic, realistic retail demo data, generated inside DuckDB.

Every value is derived from a hash of (seed, table, row key, purpose), never from ``random()``:
DuckDB's ``random()`` and ``setseed()`` depend on how rows are spread over threads, so they give
different tables from run to run. ``hash()`` is a pure function, stable across processes for a given
DuckDB version, so the same seed gives the same tables whatever the thread count or row order.

Rows are produced by ``range()``, ``unnest(range(n))`` and cross joins with small ranges over
per-customer and per-order counts, so the work is set-based; Python only builds SQL text. Money is
computed in integer cents and cast to ``DECIMAL(12,2)``, so totals add up exactly (see DESIGN.md,
"Deterministic audiences").

Customers, with their orders, order lines and email events, are generated in blocks of consecutive
customer ids, so the working memory (the temporary one-row-per-order table, the aggregation of
lines into order totals) is that of one block whatever the number of customers. A block's order
ids continue from the previous block's and every value depends only on its row's key, so the data
is the same whatever the block size.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

__all__ = ["DEFAULT_BLOCK_SIZE", "DemoCounts", "generate"]

# Customers generated at a time by :func:`generate` (with their orders, lines and events).
DEFAULT_BLOCK_SIZE = 500_000


@dataclass(frozen=True)
class DemoCounts:
    """Row count of each table created by :func:`generate`."""

    stores: int
    products: int
    customers: int
    orders: int
    order_items: int
    email_events: int


# ---------------------------------------------------------------------------------------------
# Reference data. Modest built-in lists: enough variety to look real, small enough to read.
# ---------------------------------------------------------------------------------------------

# (code, share of customers in %, name culture, number of stores, cities: (city, region))
_COUNTRIES: tuple[tuple[str, int, int, int, tuple[tuple[str, str], ...]], ...] = (
    (
        "US",
        45,
        0,
        20,
        (
            ("New York", "Northeast"),
            ("Boston", "Northeast"),
            ("Philadelphia", "Northeast"),
            ("Chicago", "Midwest"),
            ("Minneapolis", "Midwest"),
            ("Detroit", "Midwest"),
            ("Atlanta", "South"),
            ("Miami", "South"),
            ("Dallas", "South"),
            ("Houston", "South"),
            ("Denver", "West"),
            ("Seattle", "West"),
            ("San Francisco", "West"),
            ("Los Angeles", "West"),
            ("Phoenix", "West"),
        ),
    ),
    (
        "GB",
        15,
        0,
        8,
        (
            ("London", "England"),
            ("Manchester", "England"),
            ("Birmingham", "England"),
            ("Leeds", "England"),
            ("Bristol", "England"),
            ("Edinburgh", "Scotland"),
            ("Glasgow", "Scotland"),
            ("Cardiff", "Wales"),
        ),
    ),
    (
        "FR",
        10,
        1,
        6,
        (
            ("Paris", "Île-de-France"),
            ("Lyon", "Auvergne-Rhône-Alpes"),
            ("Marseille", "Provence-Alpes-Côte d'Azur"),
            ("Toulouse", "Occitanie"),
            ("Bordeaux", "Nouvelle-Aquitaine"),
            ("Lille", "Hauts-de-France"),
            ("Nantes", "Pays de la Loire"),
        ),
    ),
    (
        "DE",
        10,
        2,
        5,
        (
            ("Berlin", "Berlin"),
            ("Hamburg", "Hamburg"),
            ("Munich", "Bavaria"),
            ("Cologne", "North Rhine-Westphalia"),
            ("Frankfurt", "Hesse"),
            ("Stuttgart", "Baden-Württemberg"),
        ),
    ),
    (
        "CA",
        7,
        0,
        4,
        (
            ("Toronto", "Ontario"),
            ("Montreal", "Quebec"),
            ("Vancouver", "British Columbia"),
            ("Calgary", "Alberta"),
            ("Ottawa", "Ontario"),
        ),
    ),
    (
        "ES",
        5,
        3,
        3,
        (
            ("Madrid", "Madrid"),
            ("Barcelona", "Catalonia"),
            ("Valencia", "Valencia"),
            ("Seville", "Andalusia"),
        ),
    ),
    (
        "IT",
        5,
        4,
        2,
        (("Milan", "Lombardy"), ("Rome", "Lazio"), ("Turin", "Piedmont"), ("Naples", "Campania")),
    ),
    (
        "NL",
        3,
        5,
        2,
        (("Amsterdam", "North Holland"), ("Rotterdam", "South Holland"), ("Utrecht", "Utrecht")),
    ),
)

# Per culture (en, fr, de, es, it, nl): 20 female first names, 20 male, 25 last names. Equal
# lengths let SQL pick a name by arithmetic on a flat list instead of a join.
_FIRST_F = (
    "Emma Olivia Ava Sophia Isabella Mia Charlotte Amelia Harper Evelyn Abigail Emily Elizabeth "
    "Sofia Madison Grace Chloe Lily Hannah Zoe",
    "Camille Léa Manon Chloé Inès Jade Louise Emma Alice Lina Juliette Clara Sarah Zoé Margaux "
    "Élise Anaïs Mathilde Pauline Lucie",
    "Mia Emma Hannah Sofia Anna Lea Lena Marie Laura Lina Johanna Katharina Sabine Julia Lisa "
    "Greta Paula Charlotte Frieda Ursula",
    "Lucía Sofía María Martina Paula Julia Daniela Valeria Alba Emma Carla Sara Noa Carmen Elena "
    "Laura Ana Isabel Marta Claudia",
    "Sofia Giulia Aurora Alice Ginevra Emma Giorgia Greta Beatrice Anna Chiara Francesca Martina "
    "Sara Elena Valentina Alessia Federica Laura Silvia",
    "Emma Julia Mila Tess Sophie Zoë Sara Nora Eva Liv Anna Noor Lotte Fleur Sanne Anouk Femke "
    "Iris Lieke Maud",
)
_FIRST_M = (
    "Liam Noah Oliver James William Benjamin Lucas Henry Alexander Jack Daniel Michael Ethan "
    "Jacob Logan Samuel David Joseph Thomas George",
    "Lucas Hugo Louis Gabriel Arthur Jules Nathan Léo Raphaël Thomas Théo Maxime Antoine Nicolas "
    "Julien Mathis Baptiste Clément Paul Étienne",
    "Ben Paul Leon Finn Elias Jonas Luis Noah Felix Lukas Maximilian Jan Tim Stefan Matthias "
    "Jürgen Florian Tobias Sebastian Moritz",
    "Hugo Martín Lucas Mateo Leo Daniel Alejandro Pablo Manuel Álvaro Adrián David Mario Diego "
    "Javier Carlos José Antonio Sergio Miguel",
    "Leonardo Francesco Alessandro Lorenzo Mattia Tommaso Gabriele Andrea Riccardo Edoardo "
    "Matteo Giuseppe Marco Luca Giovanni Antonio Stefano Paolo Davide Simone",
    "Noah Sem Liam Lucas Daan Finn Levi Luuk Bram Jesse Thijs Lars Ruben Milan Sven Tim Joris "
    "Pieter Wouter Jeroen",
)
_LAST = (
    "Smith|Johnson|Williams|Brown|Jones|Miller|Davis|Wilson|Anderson|Taylor|Thomas|Moore|Jackson|"
    "White|Harris|Clark|Lewis|Walker|Hall|Young|King|Wright|Evans|O'Brien|Murphy",
    "Martin|Bernard|Dubois|Thomas|Robert|Richard|Petit|Durand|Leroy|Moreau|Simon|Laurent|"
    "Lefebvre|Michel|Garcia|David|Bertrand|Roux|Vincent|Fournier|Morel|Girard|André|Mercier|"
    "Lefèvre",
    "Müller|Schmidt|Schneider|Fischer|Weber|Meyer|Wagner|Becker|Schulz|Hoffmann|Schäfer|Koch|"
    "Bauer|Richter|Klein|Wolf|Schröder|Neumann|Schwarz|Zimmermann|Braun|Krüger|Hofmann|Hartmann|"
    "Lange",
    "García|Rodríguez|González|Fernández|López|Martínez|Sánchez|Pérez|Gómez|Martín|Jiménez|Ruiz|"
    "Hernández|Díaz|Moreno|Muñoz|Álvarez|Romero|Alonso|Gutiérrez|Navarro|Torres|Domínguez|"
    "Vázquez|Ramos",
    "Rossi|Russo|Ferrari|Esposito|Bianchi|Romano|Colombo|Ricci|Marino|Greco|Bruno|Gallo|Conti|"
    "De Luca|Mancini|Costa|Giordano|Rizzo|Lombardi|Moretti|Barbieri|Fontana|Santoro|Mariani|"
    "Rinaldi",
    "de Jong|Jansen|de Vries|van den Berg|van Dijk|Bakker|Janssen|Visser|Smit|Meijer|de Boer|"
    "Mulder|de Groot|Bos|Vos|Peters|Hendriks|van Leeuwen|Dekker|Brouwer|de Wit|Dijkstra|Smits|"
    "de Graaf|van der Meer",
)
_N_CULTURES = 6
_N_FIRST = 20
_N_LAST = 25

# (category, number of products, lowest and highest list price in cents, popularity weight,
#  nouns used in product names)
_CATEGORIES: tuple[tuple[str, int, int, int, int, tuple[str, ...]], ...] = (
    ("Women's Apparel", 300, 1500, 15000, 16, ("Dress", "Blouse", "Skirt", "Cardigan", "Coat")),
    ("Men's Apparel", 220, 1500, 15000, 12, ("Shirt", "Chinos", "Jacket", "Polo", "Hoodie")),
    ("Shoes", 180, 3000, 22000, 10, ("Sneakers", "Boots", "Loafers", "Sandals", "Trainers")),
    ("Accessories", 160, 800, 9000, 8, ("Scarf", "Belt", "Wallet", "Tote", "Cap", "Watch")),
    ("Beauty", 200, 500, 8000, 11, ("Serum", "Moisturiser", "Lipstick", "Mascara", "Cleanser")),
    ("Fragrance", 80, 2500, 15000, 4, ("Eau de Parfum", "Eau de Toilette", "Body Mist")),
    ("Home", 220, 1000, 20000, 9, ("Cushion", "Throw", "Candle", "Vase", "Lamp", "Rug")),
    ("Kitchen", 160, 800, 25000, 7, ("Skillet", "Knife Set", "Kettle", "Blender", "Teapot")),
    ("Electronics", 120, 2000, 90000, 6, ("Headphones", "Speaker", "Charger", "Smartwatch")),
    ("Sports & Outdoors", 150, 1200, 35000, 7, ("Yoga Mat", "Backpack", "Tent", "Leggings")),
    ("Toys", 110, 600, 12000, 5, ("Puzzle", "Building Set", "Plush Bear", "Board Game", "Kite")),
    ("Kids", 100, 800, 8000, 5, ("Romper", "Pyjamas", "Raincoat", "Backpack", "Sneakers")),
)

_BRANDS = [
    "Northwind",
    "Bluebird",
    "Alder & Co",
    "Maison Lune",
    "Kestrel",
    "Fjord",
    "Solstice",
    "Harbor Lane",
    "Verde",
    "Atlas",
    "Copper Fox",
    "Linden",
    "Nova",
    "Pinecrest",
    "Rivage",
    "Sable",
    "Tidewater",
    "Urbano",
    "Wren",
    "Zephyr",
    "Halcyon",
    "Ember",
    "Cobalt",
    "Meridian",
    "Oakhurst",
    "Petal & Stem",
    "Quill",
    "Rowan",
    "Saltmarsh",
    "Terra",
    "Umber",
    "Vale",
    "Willow",
    "Yarrow",
    "Aurora",
    "Birch",
    "Cedar & Sage",
    "Driftwood",
    "Evergreen",
    "Foxglove",
]

_ADJECTIVES = [
    "Classic",
    "Essential",
    "Everyday",
    "Premium",
    "Organic",
    "Vintage",
    "Modern",
    "Signature",
    "Soft",
    "Light",
    "Cosy",
    "Bold",
    "Slim",
    "Relaxed",
    "Deluxe",
    "Mini",
    "Original",
    "Heritage",
    "Studio",
    "Coastal",
]

_GLOBAL_EMAIL_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com")
_LOCAL_EMAIL_DOMAINS = {
    "US": ("aol.com", "comcast.net"),
    "GB": ("btinternet.com", "yahoo.co.uk"),
    "FR": ("orange.fr", "free.fr", "laposte.net"),
    "DE": ("gmx.de", "web.de", "t-online.de"),
    "CA": ("rogers.com", "shaw.ca"),
    "ES": ("telefonica.net", "yahoo.es"),
    "IT": ("libero.it", "virgilio.it"),
    "NL": ("ziggo.nl", "kpnmail.nl"),
}

# Three years of orders, ending the day before as_of so nothing is at or after the as-of time.
_ORDER_DAYS = 3 * 365
_EMAIL_WEEKS = 52


# ---------------------------------------------------------------------------------------------
# SQL building helpers.
# ---------------------------------------------------------------------------------------------


def _q(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def _list(values: Sequence[str | int]) -> str:
    """A SQL list literal."""
    return "[" + ", ".join(_q(v) if isinstance(v, str) else str(v) for v in values) + "]"


def _lookup(weighted: Sequence[tuple[str | int, float]], size: int = 1000) -> list[str | int]:
    """A list of ``size`` values in which each value appears in proportion to its weight.

    Indexing it with a uniform draw samples the weighted distribution with one list lookup
    instead of a join. Not for use inside lambdas (see :func:`_case_index`).
    """
    total = sum(w for _, w in weighted)
    out: list[str | int] = []
    cumulative = 0.0
    for value, weight in weighted:
        cumulative += weight
        out.extend([value] * (round(size * cumulative / total) - len(out)))
    return out


def _mixed_hash(arguments: str) -> str:
    """A well-mixed 64-bit hash of several values.

    DuckDB combines the hashes of several arguments cheaply, so hash(s, t, k, 'open') and
    hash(s, t, k, 'click') differ by a fixed pattern and draws made from them are correlated
    (measured: correlation -0.53). Hashing the result again (a murmur-style finaliser) makes
    them independent (|correlation| < 0.003, joint frequencies as expected).
    """
    return f"hash(hash({arguments}))"


class _Rand:
    """Builds SQL for uniform draws in [0, 1) from a hash of (seed, table, key, purpose)."""

    def __init__(self, seed: int, table: str) -> None:
        self.seed = seed
        self.table = table

    def _hash(self, key: str, purpose: str) -> str:
        return _mixed_hash(f"{self.seed}::BIGINT, {_q(self.table)}, {key}, {_q(purpose)}")

    def u(self, key: str, purpose: str) -> str:
        # 53 high bits of the 64-bit hash give an exact double in [0, 1).
        return f"(({self._hash(key, purpose)} >> 11)::DOUBLE / 9007199254740992.0)"

    def below(self, key: str, purpose: str, n: int | str) -> str:
        """A uniform integer in [0, n)."""
        return f"floor({self.u(key, purpose)} * ({n}))::BIGINT"

    def pick(self, key: str, purpose: str, values: Sequence[str | int]) -> str:
        """One element of ``values``, uniformly."""
        return f"{_list(values)}[1 + {self.below(key, purpose, len(values))}]"

    def digits(self, key: str, purpose: str) -> str:
        """A string of 18 random decimal digits to cut phone numbers and postal codes from."""
        return f"lpad(({self._hash(key, purpose)} % 1000000000000000000)::VARCHAR, 18, '0')"


class _Draws:
    """Uniform draws sliced from a few shared hashes of one row key.

    Hashing is the main cost of generation; one 64-bit hash gives four 16-bit draws, enough
    resolution for choices and rates. Draws are allocated by purpose; :meth:`columns` returns the
    hash columns, to select in a step before the expressions that use them.
    """

    _BITS = 16
    _PER_HASH = 64 // _BITS

    def __init__(self, seed: int, table: str, key: str, prefix: str = "_h") -> None:
        self.seed = seed
        self.table = table
        self.key = key
        self.prefix = prefix
        self.slots: dict[str, int] = {}

    def field(self, purpose: str) -> str:
        """The draw for ``purpose`` as an integer in [0, 65536)."""
        slot = self.slots.setdefault(purpose, len(self.slots))
        column, part = divmod(slot, self._PER_HASH)
        mask = (1 << self._BITS) - 1
        return f"(({self.prefix}{column} >> {part * self._BITS}) & {mask})"

    def u(self, purpose: str) -> str:
        return f"({self.field(purpose)}::DOUBLE / {1 << self._BITS}.0)"

    def below(self, purpose: str, n: int | str) -> str:
        """A uniform integer in [0, n)."""
        return f"({self.field(purpose)} * ({n}) // {1 << self._BITS})::BIGINT"

    def pick(self, purpose: str, values: Sequence[str | int]) -> str:
        return f"{_list(values)}[1 + {self.below(purpose, len(values))}]"

    def columns(self) -> str:
        n = -(-len(self.slots) // self._PER_HASH)
        return ", ".join(
            f"{_mixed_hash(f'{self.seed}::BIGINT, {_q(self.table)}, {self.key}, {i}')}"
            f" AS {self.prefix}{i}"
            for i in range(n)
        )


def _money(cents: str) -> str:
    # DECIMAL * DECIMAL stays DECIMAL; dividing by an integer would give a DOUBLE.
    return f"CAST(CAST(({cents}) AS DECIMAL(18, 0)) * 0.01 AS DECIMAL(12, 2))"


def _country_list(index: int) -> list[Any]:
    return [c[index] for c in _COUNTRIES]


def _store_starts() -> list[int]:
    starts, next_id = [], 1
    for country in _COUNTRIES:
        starts.append(next_id)
        next_id += country[3]
    return starts


def _city_starts() -> list[int]:
    starts, next_index = [], 1
    for country in _COUNTRIES:
        starts.append(next_index)
        next_index += len(country[4])
    return starts


_CITIES = [city for country in _COUNTRIES for city in country[4]]


def _category_starts() -> list[int]:
    starts, next_id = [], 1
    for category in _CATEGORIES:
        starts.append(next_id)
        next_id += category[1]
    return starts


def _case_index(index: str, values: Sequence[int]) -> str:
    """``values[index]`` (1-based) as a CASE.

    Used instead of a list literal inside lambdas, where DuckDB rebuilds a literal for every
    element (measured: ~5x slower than a CASE with a 100-element list).
    """
    branches = " ".join(f"WHEN {i} THEN {v}" for i, v in enumerate(values, start=1))
    return f"(CASE {index} {branches} END)"


def _total(weighted: Sequence[tuple[int, int]]) -> int:
    return sum(w for _, w in weighted)


def _case_weighted(draw: str, weighted: Sequence[tuple[int, int]]) -> str:
    """The value whose cumulative weight band holds ``draw``, an integer in [0, sum of weights)."""
    branches, cumulative = [], 0
    for value, weight in weighted[:-1]:
        cumulative += weight
        branches.append(f"WHEN {draw} < {cumulative} THEN {value}")
    return f"(CASE {' '.join(branches)} ELSE {weighted[-1][0]} END)"


def _product_price_cents(seed: int, product_id: str, category: str) -> str:
    """List price in cents of a product, from its id and 1-based category index.

    A pure expression, so orders can price their lines without joining products.
    """
    r = _Rand(seed, "products")
    low = _case_index(category, [c[2] for c in _CATEGORIES])
    high = _case_index(category, [c[3] for c in _CATEGORIES])
    # Squaring skews prices towards the cheap end of the category, as in a real assortment.
    cents = f"({low} + floor(({high} - {low}) * pow({r.u(product_id, 'price')}, 2)))"
    # Prices end in .99 mostly, sometimes .00 or .50.
    ending = f"(CASE {r.below(product_id, 'ending', 5)} WHEN 3 THEN 0 WHEN 4 THEN -50 ELSE -1 END)"
    return f"greatest(199, (floor({cents} / 100) * 100 + 100 + {ending})::BIGINT)"


# ---------------------------------------------------------------------------------------------
# Tables.
# ---------------------------------------------------------------------------------------------


def _create_stores(con: duckdb.DuckDBPyConnection, seed: int) -> None:
    r = _Rand(seed, "stores")
    starts = _store_starts()
    # Country of each store id, then its city: stores cycle through their country's cities so
    # the largest cities get more than one store.
    country_of = _list([i + 1 for i, c in enumerate(_COUNTRIES) for _ in range(c[3])])
    con.execute(
        f"""
        CREATE OR REPLACE TABLE stores AS
        WITH s AS (
            SELECT (range + 1)::INTEGER AS store_id, {country_of}[range + 1] AS ci
            FROM range({sum(c[3] for c in _COUNTRIES)})
        ), c AS (
            SELECT store_id, ci,
                {_list(_city_starts())}[ci]
                    + (store_id - {_list(starts)}[ci]) % {
            _list([len(c[4]) for c in _COUNTRIES])
        }[ci]
                    AS city_index
            FROM s
        )
        SELECT
            store_id,
            {_list([n for n, _ in _CITIES])}[city_index] || ' '
                || {
            r.pick(
                "store_id",
                "suffix",
                [
                    "Central",
                    "Downtown",
                    "Galleria",
                    "Outlet",
                    "Plaza",
                    "Riverside",
                    "Station",
                    "Park",
                ],
            )
        }
                AS store_name,
            {_list([n for n, _ in _CITIES])}[city_index] AS city,
            {_list([g for _, g in _CITIES])}[city_index] AS region,
            {_list(_country_list(0))}[ci] AS country
        FROM c
        """
    )


def _create_products(con: duckdb.DuckDBPyConnection, seed: int) -> None:
    r = _Rand(seed, "products")
    nouns = [cat[5] for cat in _CATEGORIES]
    # A flat noun list with per-category offsets, so a noun is picked by arithmetic.
    flat_nouns = [n for group in nouns for n in group]
    noun_starts, offset = [], 1
    for group in nouns:
        noun_starts.append(offset)
        offset += len(group)
    con.execute(
        f"""
        CREATE OR REPLACE TABLE products AS
        WITH c AS (
            SELECT unnest(range(1, {len(_CATEGORIES) + 1})) AS cat
        ), p AS (
            SELECT cat, ({_list(_category_starts())}[cat] + k)::INTEGER AS product_id
            FROM (
                SELECT cat, unnest(range({_list([c[1] for c in _CATEGORIES])}[cat])) AS k FROM c
            )
        )
        SELECT
            product_id,
            -- Each category draws on a band of about six neighbouring brands.
            {_list(_BRANDS)}[1 + (cat * 3 + {r.below("product_id", "brand", 6)}) % {len(_BRANDS)}]
                || ' ' || {r.pick("product_id", "adjective", _ADJECTIVES)}
                || ' ' || {_list(flat_nouns)}[{_list(noun_starts)}[cat]
                    + {r.below("product_id", "noun", f"{_list([len(g) for g in nouns])}[cat]")}]
                AS product_name,
            {_list([c[0] for c in _CATEGORIES])}[cat] AS category,
            {_list(_BRANDS)}[1 + (cat * 3 + {r.below("product_id", "brand", 6)}) % {len(_BRANDS)}]
                AS brand,
            {_money(_product_price_cents(seed, "product_id", "cat"))} AS list_price
        FROM p
        """
    )


def _create_time(
    con: duckdb.DuckDBPyConnection, as_of: datetime.date
) -> tuple[int, dict[str, int]]:
    """Creates the order-time lookup table and returns its size and some bounds.

    Each day of the order window gets an integer weight (season, Black Friday week, weekday,
    growth); the table has one row per weight unit, so a uniform integer t in [0, total) maps
    to a day with the right probability by an equi-join. Per-customer windows are ranges of t.
    """
    start = as_of - datetime.timedelta(days=_ORDER_DAYS)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _activator_demo_time AS
        WITH d AS (
            SELECT range AS d, DATE '{start.isoformat()}' + range::INTEGER AS day
            FROM range({_ORDER_DAYS})
        ), w AS (
            SELECT d, day,
                -- Thanksgiving is the fourth Thursday of November; its week to Cyber Monday
                -- is the year's peak.
                22 + (4 - dayofweek(make_date(year(day), 11, 1)) + 7) % 7 AS thanksgiving,
                CASE
                    WHEN month(day) = 11 AND day(day) BETWEEN thanksgiving AND thanksgiving + 4
                        THEN 3.0
                    WHEN month(day) = 11 THEN 1.45
                    WHEN month(day) = 12 AND day(day) <= 22 THEN 1.9
                    WHEN month(day) = 12 AND day(day) >= 26 THEN 1.3
                    WHEN month(day) = 12 THEN 1.0
                    ELSE {_list([85, 80, 95, 100, 100, 115, 125, 115, 95, 100])}[month(day)] / 100
                END AS season,
                {_list([110, 90, 90, 95, 100, 110, 125])}[dayofweek(day) + 1] / 100 AS weekday,
                1 + 0.12 * d / 365 AS growth
            FROM d
        ), c AS (
            SELECT d, day, greatest(1, round(100 * season * weekday * growth))::BIGINT AS w
            FROM w
        ), cum AS (
            SELECT d, day, w, (sum(w) OVER (ORDER BY d) - w)::BIGINT AS lo FROM c
        )
        SELECT unnest(range(lo, lo + w)) AS t, d::INTEGER AS d,
            epoch(day::TIMESTAMP)::BIGINT AS day_epoch
        FROM cum
        """
    )

    def t_bounds(days_before_from: int, days_before_to: int) -> tuple[int, int]:
        # The last day (d = _ORDER_DAYS - 1) is one day before as_of.
        lo_d, hi_d = _ORDER_DAYS - days_before_to, _ORDER_DAYS - days_before_from
        # Literal integers, not parameters: the first parameter binding took ~0.5 s here.
        row = con.execute(
            "SELECT min(t), max(t) FROM temp._activator_demo_time"
            f" WHERE d BETWEEN {max(lo_d, 0):d} AND {hi_d:d}"
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    total_row = con.execute("SELECT max(t) + 1 FROM temp._activator_demo_time").fetchone()
    assert total_row is not None
    bounds = {}
    for name, (a, b) in {
        "active": (1, 180),
        "lapsing": (181, 548),
        "quiet": (549, 730),
        "churned": (731, _ORDER_DAYS),
    }.items():
        bounds[f"{name}_lo"], bounds[f"{name}_hi"] = t_bounds(a, b)
    return int(total_row[0]), bounds


# Buyer kinds, as cumulative thresholds on one draw: 15% never order; of buyers, ~38% once,
# ~32% occasionally (2-5), ~18% regularly (6-25), ~12% heavily (25-134).
_KIND_THRESHOLDS = (0.15, 0.473, 0.745, 0.898)


def _create_profile(
    con: duckdb.DuckDBPyConnection,
    seed: int,
    block: tuple[int, int],
    order_offset: int,
    total_t: int,
    b: dict[str, int],
) -> int:
    """Per-customer latent facts that several tables need: country, stores, order window.

    For the customers of one block (ids ``block[0]`` to ``block[1]``, inclusive), whose orders
    get ids after ``order_offset`` (the number of orders of the previous blocks). Returns the
    number of orders of the block.
    """
    lo, hi = block
    r = _Rand(seed, "customers")
    k = "customer_id"
    never, one, occasional, regular = _KIND_THRESHOLDS
    country_lookup = _lookup([(i + 1, c[1]) for i, c in enumerate(_COUNTRIES)], 100)

    def window(lo: str, hi: str, purpose: str) -> str:
        return f"{b[lo]} + {r.below(k, purpose, b[hi] - b[lo] + 1)}"

    last_by_status = (
        "CASE status"
        f" WHEN 'active' THEN {window('active_lo', 'active_hi', 'last')}"
        f" WHEN 'lapsing' THEN {window('lapsing_lo', 'lapsing_hi', 'last')}"
        f" WHEN 'quiet' THEN {window('quiet_lo', 'quiet_hi', 'last')}"
        f" ELSE {window('churned_lo', 'churned_hi', 'last')} END"
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _activator_demo_profile AS
        WITH base AS (
            SELECT range::BIGINT AS customer_id FROM range({lo:d}, {hi + 1:d})
        ), k AS (
            SELECT customer_id,
                {_list(country_lookup)}[1 + {r.below(k, "country", 100)}] AS ci,
                {r.u(k, "kind")} AS u_kind,
                CASE
                    WHEN u_kind < {never} THEN 'never'
                    WHEN u_kind < {one} THEN 'one'
                    WHEN u_kind < {occasional} THEN 'occasional'
                    WHEN u_kind < {regular} THEN 'regular'
                    ELSE 'heavy'
                END AS kind,
                CASE kind
                    WHEN 'never' THEN 0
                    WHEN 'one' THEN 1
                    WHEN 'occasional' THEN 2 + floor(4 * pow({r.u(k, "n")}, 1.4))
                    WHEN 'regular' THEN 6 + floor(20 * pow({r.u(k, "n")}, 1.4))
                    ELSE 25 + floor(110 * pow({r.u(k, "n")}, 2.0))
                END::BIGINT AS n_orders,
                {r.u(k, "status")} AS u_status,
                -- Heavy buyers stay active more often than occasional ones.
                CASE
                    WHEN kind IN ('never', 'one') THEN kind
                    WHEN u_status < CASE kind WHEN 'heavy' THEN 0.75 ELSE 0.50 END THEN 'active'
                    WHEN u_status < CASE kind WHEN 'heavy' THEN 0.90 ELSE 0.75 END THEN 'lapsing'
                    WHEN u_status < CASE kind WHEN 'heavy' THEN 0.93 ELSE 0.83 END THEN 'quiet'
                    ELSE 'churned'
                END AS status
            FROM base
        ), w AS (
            SELECT *,
                CASE
                    WHEN status = 'never' THEN NULL
                    WHEN status = 'one' THEN {r.below(k, "last", total_t)}
                    ELSE {last_by_status}
                END AS t_last,
                CASE
                    WHEN status IN ('never', 'one') THEN t_last
                    -- Heavy buyers have usually been customers for longer.
                    ELSE floor(t_last * pow({r.u(k, "first")},
                                            CASE kind WHEN 'heavy' THEN 2.0 ELSE 1.0 END))::BIGINT
                END AS t_first
            FROM k
        )
        SELECT w.customer_id, w.ci, w.kind, w.status, w.n_orders, w.t_first, w.t_last,
            ({order_offset:d} + coalesce(sum(w.n_orders) OVER (ORDER BY w.customer_id
                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0))::BIGINT AS order_offset,
            tm.day_epoch AS first_day_epoch,
            -- Favourite and second category, drawn from category popularity.
            {_list(_lookup(_POPULARITY, 1000))}[1 + {r.below(k, "affinity", 1000)}] AS favourite,
            {_list(_lookup(_POPULARITY, 1000))}[1 + {r.below(k, "second_affinity", 1000)}]
                AS second,
            -- 10% shop online only; the rest have a home store in their country and sometimes
            -- visit a second one.
            CASE WHEN {r.u(k, "online_only")} >= 0.10 THEN
                ({_list(_store_starts())}[w.ci]
                 + {r.below(k, "home_store", f"{_list(_country_list(3))}[w.ci]")})::INTEGER
            END AS home_store_id,
            ({_list(_store_starts())}[w.ci]
             + {r.below(k, "alt_store", f"{_list(_country_list(3))}[w.ci]")})::INTEGER
                AS alt_store_id
        FROM w LEFT JOIN temp._activator_demo_time tm ON tm.t = w.t_first
        """
    )
    row = con.execute("SELECT sum(n_orders) FROM temp._activator_demo_profile").fetchone()
    assert row is not None
    return int(row[0] or 0)


def _create_customers(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE OR REPLACE TABLE customers (
            customer_id BIGINT PRIMARY KEY,
            email VARCHAR,
            phone VARCHAR,
            first_name VARCHAR,
            last_name VARCHAR,
            address VARCHAR,
            city VARCHAR,
            postal_code VARCHAR,
            country VARCHAR,
            birth_date DATE,
            gender VARCHAR,
            loyalty_tier VARCHAR,
            email_opt_in BOOLEAN,
            sms_opt_in BOOLEAN,
            signup_at TIMESTAMP,
            home_store_id INTEGER
        )
        """
    )


def _insert_customers(con: duckdb.DuckDBPyConnection, seed: int, as_of: datetime.date) -> None:
    """Inserts the customers of the current block (those of the profile table)."""
    r = _Draws(seed, "customers", "customer_id")
    full = _Rand(seed, "customers")
    k = "customer_id"
    n_c = len(_COUNTRIES)
    codes = _list(_country_list(0))
    first_names = _list(
        [
            name
            for culture in range(_N_CULTURES)
            for names in (_FIRST_F[culture], _FIRST_M[culture])
            for name in names.split()
        ]
    )
    last_names = _list([name for group in _LAST for name in group.split("|")])
    for culture in range(_N_CULTURES):
        assert len(_FIRST_F[culture].split()) == _N_FIRST
        assert len(_FIRST_M[culture].split()) == _N_FIRST
        assert len(_LAST[culture].split("|")) == _N_LAST
    local_domains = "CASE country " + " ".join(
        f"WHEN {_q(c)} THEN {r.pick('local_domain', d)}" for c, d in _LOCAL_EMAIL_DOMAINS.items()
    )
    local_domains += " END"
    # Store cities, so a customer's city is usually the one of their home store.
    store_city = _list(
        [
            _CITIES[_city_starts()[ci] - 1 + j % len(c[4])][0]
            for ci, c in enumerate(_COUNTRIES)
            for j in range(c[3])
        ]
    )
    cities = _list([n for n, _ in _CITIES])
    n_cities = _list([len(c[4]) for c in _COUNTRIES])
    dg = full.digits(k, "phone_digits")

    def s(a: int, n: int) -> str:
        return f"substr(dg, {a}, {n})"

    # Formats as people type them; the first digit of a part is forced to a valid range.
    phone_formats = {
        "US": [
            f"'+1 ' || npa || ' ' || nxx || ' ' || {s(7, 4)}",
            f"'(' || npa || ') ' || nxx || '-' || {s(7, 4)}",
            f"npa || '.' || nxx || '.' || {s(7, 4)}",
            f"npa || '-' || nxx || '-' || {s(7, 4)}",
            f"'+1' || npa || nxx || {s(7, 4)}",
            f"'1-' || npa || '-' || nxx || '-' || {s(7, 4)}",
        ],
        "GB": [
            f"'+44 20 7' || {s(1, 3)} || ' ' || {s(4, 4)}",
            f"'020 7' || {s(1, 3)} || ' ' || {s(4, 4)}",
            f"'+44 7' || {s(1, 3)} || ' ' || {s(4, 6)}",
            f"'07' || {s(1, 3)} || ' ' || {s(4, 6)}",
            f"'+447' || {s(1, 3)} || {s(4, 6)}",
        ],
        "FR": [
            f"'0033 1 ' || {s(1, 2)} || ' ' || {s(3, 2)} || ' ' || {s(5, 2)} || ' ' || {s(7, 2)}",
            f"'+33 6 ' || {s(1, 2)} || ' ' || {s(3, 2)} || ' ' || {s(5, 2)} || ' ' || {s(7, 2)}",
            f"'06 ' || {s(1, 2)} || ' ' || {s(3, 2)} || ' ' || {s(5, 2)} || ' ' || {s(7, 2)}",
            f"'01.' || {s(1, 2)} || '.' || {s(3, 2)} || '.' || {s(5, 2)} || '.' || {s(7, 2)}",
            f"'+337' || {s(1, 8)}",
        ],
        "DE": [
            f"'+49 30 ' || {s(1, 8)}",
            f"'030 ' || {s(1, 8)}",
            f"'+49 15' || {s(1, 1)} || ' ' || {s(2, 8)}",
            f"'015' || {s(1, 1)} || ' ' || {s(2, 8)}",
            f"'+49 (0)30 ' || {s(1, 8)}",
        ],
        "CA": [
            f"'+1 ' || npa || ' ' || nxx || ' ' || {s(7, 4)}",
            f"'(' || npa || ') ' || nxx || '-' || {s(7, 4)}",
            f"npa || '-' || nxx || '-' || {s(7, 4)}",
        ],
        "ES": [
            f"'+34 6' || {s(1, 2)} || ' ' || {s(3, 3)} || ' ' || {s(6, 3)}",
            f"'6' || {s(1, 2)} || ' ' || {s(3, 2)} || ' ' || {s(5, 2)} || ' ' || {s(7, 2)}",
            f"'+34 91 ' || {s(1, 3)} || ' ' || {s(4, 2)} || ' ' || {s(6, 2)}",
            f"'0034 6' || {s(1, 8)}",
        ],
        "IT": [
            f"'+39 06 ' || {s(1, 4)} || ' ' || {s(5, 4)}",
            f"'+39 3' || {s(1, 2)} || ' ' || {s(3, 3)} || ' ' || {s(6, 4)}",
            f"'3' || {s(1, 2)} || ' ' || {s(3, 3)} || ' ' || {s(6, 4)}",
            f"'06 ' || {s(1, 8)}",
        ],
        "NL": [
            f"'+31 20 ' || {s(1, 3)} || ' ' || {s(4, 4)}",
            f"'020-' || {s(1, 7)}",
            f"'06 ' || {s(1, 8)}",
            f"'+31 6 ' || {s(1, 8)}",
            f"'0031 6' || {s(1, 8)}",
        ],
    }
    phone_case = "CASE phone_country "
    for code, formats in phone_formats.items():
        picks = " ".join(f"WHEN {i} THEN {f}" for i, f in enumerate(formats))
        phone_case += (
            f"WHEN {_q(code)} THEN CASE {r.below('phone_format', len(formats))} {picks} END "
        )
    phone_case += "END"

    us_streets = [
        "Maple",
        "Oak",
        "Pine",
        "Cedar",
        "Elm",
        "Washington",
        "Lake",
        "Hill",
        "Main",
        "Park",
        "Sunset",
        "Lincoln",
    ]
    us_types = ["Street", "Avenue", "Road", "Boulevard", "Drive", "Lane", "Court", "Way"]
    gb_types = ["Road", "Street", "Lane", "Close", "Gardens", "Crescent"]
    fr_streets = [
        "rue de la République",
        "avenue Victor Hugo",
        "rue des Lilas",
        "boulevard Pasteur",
        "rue du Général Leclerc",
        "avenue Jean Jaurès",
        "place de la Mairie",
    ]
    de_streets = ["Haupt", "Bahnhof", "Schiller", "Goethe", "Linden", "Garten", "Kirch", "Berg"]
    de_types = ["straße", "weg", "allee", "platz"]
    es_streets = ["Calle Mayor", "Calle de Alcalá", "Gran Vía", "Calle del Sol", "Calle Real"]
    it_streets = ["Via Roma", "Via Garibaldi", "Via Mazzini", "Via Dante", "Corso Cavour"]
    nl_streets = ["Kerk", "Dorp", "Molen", "School", "Stations", "Prinsen", "Linden"]
    number = f"(1 + {r.below('house_number', 199)})::VARCHAR"
    street_name = r.pick("street", us_streets)
    address = f"""CASE country
        WHEN 'US' THEN ({number} || '0 ' || {street_name} || ' ' || {r.pick("type", us_types)}
            || CASE WHEN {r.u("apt")} < 0.15
                THEN ' Apt ' || (1 + {r.below("apt_no", 40)}) ELSE '' END)
        WHEN 'CA' THEN {number} || ' ' || {street_name} || ' ' || {r.pick("type", us_types)}
        WHEN 'GB' THEN {number} || ' ' || {street_name} || ' ' || {r.pick("type", gb_types)}
        WHEN 'FR' THEN {number} || ' ' || {r.pick("street", fr_streets)}
        WHEN 'DE' THEN {r.pick("street", de_streets)} || {r.pick("type", de_types)} || ' '
            || {number}
        WHEN 'ES' THEN {r.pick("street", es_streets)} || ', ' || {number}
        WHEN 'IT' THEN {r.pick("street", it_streets)} || ' ' || {number}
        ELSE {r.pick("street", nl_streets)} || 'straat ' || {number}
    END"""
    pc = full.digits(k, "postal_digits")
    letters = "ABCEGHJKLMNPRSTVWXYZ"

    def letter(purpose: str) -> str:
        return f"substr({_q(letters)}, 1 + {r.below(purpose, len(letters))}, 1)"

    postal = f"""CASE country
        WHEN 'US' THEN (10000 + {pc}[1:5]::INTEGER % 89999)::VARCHAR
        WHEN 'CA' THEN {letter("pc1")} || {pc}[1:1] || {letter("pc2")} || ' '
            || {pc}[2:2] || {letter("pc3")} || {pc}[3:3]
        WHEN 'GB' THEN {
        r.pick(
            "pc_area",
            ["SW", "EC", "N", "E", "W", "NW", "SE", "M", "B", "LS", "BS", "EH", "G", "CF"],
        )
    }
            || (1 + {pc}[1:1]::INTEGER)::VARCHAR || ' ' || {pc}[2:2] || {letter("pc1")}
            || {letter("pc2")}
        WHEN 'NL' THEN (1000 + {pc}[1:4]::INTEGER % 8999)::VARCHAR || ' ' || {letter("pc1")}
            || {letter("pc2")}
        ELSE lpad((1000 + {pc}[1:5]::INTEGER % 94999)::VARCHAR, 5, '0')
    END"""

    insert = f"""
        INSERT INTO customers
        WITH h AS (
            SELECT p.*, __HASH_COLUMNS__ FROM temp._activator_demo_profile p
        ), a AS (
            SELECT h.*,
                {codes}[h.ci] AS country,
                {r.u("gender")} AS u_gender,
                CASE WHEN u_gender < 0.49 THEN 'F' WHEN u_gender < 0.93 THEN 'M'
                     WHEN u_gender < 0.95 THEN 'X' END AS gender,
                -- Names mostly come from the country's culture, sometimes from any other.
                CASE WHEN {r.u("mixed")} < 0.75
                    THEN {_list(_country_list(2))}[h.ci]
                    ELSE {r.below("culture", _N_CULTURES)} END AS culture,
                {first_names}[1 + culture * {2 * _N_FIRST}
                    + CASE WHEN gender = 'F' OR (gender IS DISTINCT FROM 'M'
                                                  AND {r.u("name_gender")} < 0.5)
                        THEN 0 ELSE {_N_FIRST} END
                    + {r.below("first_name", _N_FIRST)}] AS first_name,
                {last_names}[1 + culture * {_N_LAST} + {r.below("last_name", _N_LAST)}]
                    AS last_name,
                -- Most phones belong to the customer's country; some to another one.
                CASE WHEN {r.u("phone_abroad")} < 0.07
                    THEN {codes}[1 + (h.ci + {r.below("phone_country", n_c - 1)}) % {n_c}]
                    ELSE country END AS phone_country,
                {dg} AS dg,
                (2 + {s(1, 1)}::INTEGER % 8)::VARCHAR || {s(2, 2)} AS npa,
                (2 + {s(4, 1)}::INTEGER % 8)::VARCHAR || {s(5, 2)} AS nxx,
                regexp_replace(lower(strip_accents(first_name)), '[^a-z]', '', 'g') AS f,
                regexp_replace(lower(strip_accents(last_name)), '[^a-z]', '', 'g') AS l
            FROM h
        ), e AS (
            SELECT a.*,
                -- The customer id in the local part keeps addresses (nearly) unique.
                CASE {r.below("email_pattern", 5)}
                    WHEN 0 THEN f || '.' || l || customer_id
                    WHEN 1 THEN left(f, 1) || l || customer_id
                    WHEN 2 THEN f || '_' || l || customer_id
                    WHEN 3 THEN l || '.' || f || customer_id
                    ELSE f || customer_id
                END AS local_part,
                CASE WHEN {r.u("domain_local")} < 0.3 THEN {local_domains}
                     ELSE {r.pick("domain", _GLOBAL_EMAIL_DOMAINS)} END AS domain,
                local_part || '@' || domain AS clean_email,
                {r.u("email_quality")} AS u_email,
                {phone_case} AS clean_phone,
                {r.u("phone_quality")} AS u_phone
            FROM a
        )
        SELECT
            customer_id,
            CASE
                WHEN u_email < 0.05 THEN NULL
                -- Invalid: no @, no domain, no top-level domain.
                WHEN u_email < 0.06 THEN local_part || domain
                WHEN u_email < 0.07 THEN local_part || '@'
                WHEN u_email < 0.08 THEN local_part || '@' || split_part(domain, '.', 1)
                -- Valid once trimmed and lower-cased.
                WHEN u_email < 0.11 THEN upper(clean_email)
                WHEN u_email < 0.13 THEN ' ' || clean_email || '  '
                WHEN u_email < 0.14 THEN upper(left(clean_email, 1)) || substr(clean_email, 2)
                ELSE clean_email
            END AS email,
            CASE
                WHEN u_phone < 0.10 THEN NULL
                -- Invalid: too short, letters, placeholder text.
                WHEN u_phone < 0.115 THEN left(dg, 5)
                WHEN u_phone < 0.13 THEN left(clean_phone, length(clean_phone) - 3) || 'ABC'
                WHEN u_phone < 0.14 THEN {r.pick("phone_junk", ["n/a", "unknown", "none"])}
                ELSE clean_phone
            END AS phone,
            first_name,
            last_name,
            {address} AS address,
            CASE WHEN home_store_id IS NOT NULL AND {r.u("same_city")} < 0.85
                THEN {store_city}[home_store_id]
                ELSE {cities}[{_list(_city_starts())}[ci]
                              + {r.below("city", f"{n_cities}[ci]")}]
            END AS city,
            {postal} AS postal_code,
            country,
            -- Ages 18 to 85, most between 25 and 55; 6% unknown.
            CASE WHEN {r.u("birth_known")} >= 0.06 THEN
                DATE '{as_of.isoformat()}' - (18 * 365 + floor(67 * 365 * (({r.u("age1")}
                    + {r.u("age2")}) / 2) ^ 1.3))::INTEGER
            END AS birth_date,
            gender,
            -- Tiers follow spend: heavy buyers are often gold or platinum.
            CASE
                WHEN kind = 'heavy' AND {r.u("tier")} < 0.40 THEN 'platinum'
                WHEN kind IN ('heavy', 'regular') AND {r.u("tier")} < 0.70 THEN 'gold'
                WHEN kind IN ('heavy', 'regular', 'occasional') AND {r.u("tier")} < 0.75
                    THEN 'silver'
                WHEN kind = 'one' AND {r.u("tier")} < 0.25 THEN 'silver'
                ELSE 'none'
            END AS loyalty_tier,
            {r.u("email_opt_in")} < CASE WHEN kind = 'never' THEN 0.45 ELSE 0.62 END
                AS email_opt_in,
            {r.u("sms_opt_in")} < 0.30 AS sms_opt_in,
            -- Buyers sign up before their first order (often the same day); others at any time
            -- in the last five years.
            CASE WHEN first_day_epoch IS NOT NULL
                THEN make_timestamp((first_day_epoch
                    - 60 - floor(pow({r.u("signup")}, 4) * 730 * 86400)::BIGINT) * 1000000)
                ELSE make_timestamp((epoch(TIMESTAMP '{as_of.isoformat()}')::BIGINT - 60
                    - floor({r.u("signup")} * 5 * 365 * 86400)::BIGINT) * 1000000)
            END AS signup_at,
            home_store_id
        FROM e
        """
    con.execute(insert.replace("__HASH_COLUMNS__", r.columns()))


_N_LINES = ((1, 45), (2, 25), (3, 15), (4, 9), (5, 6))
_QUANTITY = ((1, 82), (2, 12), (3, 4), (4, 1), (6, 1))
_MARKDOWN_PCT = ((0, 82), (10, 5), (20, 5), (30, 4), (40, 2), (50, 2))
_POPULARITY = tuple((n + 1, cat[4]) for n, cat in enumerate(_CATEGORIES))
_HOURS_ONLINE = tuple(
    enumerate([2, 1, 1, 1, 1, 2, 3, 5, 6, 6, 6, 6, 7, 6, 6, 6, 6, 7, 8, 9, 10, 10, 8, 5])
)
_HOURS_STORE = tuple((h + 9, w) for h, w in enumerate([3, 5, 7, 8, 8, 8, 8, 9, 10, 10, 8, 5]))


def _order_skeleton(seed: int) -> str:
    """SELECT of every order without its amounts, plus what its lines need.

    Both order_items and orders are built from it.
    """
    r = _Draws(seed, "orders", "order_id", prefix="_o")
    full = _Rand(seed, "orders")
    lean = _Rand(seed, "customers").u("customer_id", "store_lean")
    body = f"""
        WITH o AS (
            SELECT customer_id, n_orders, t_first, t_last, home_store_id, alt_store_id,
                favourite, second, (order_offset + j + 1)::BIGINT AS order_id, j
            FROM (
                SELECT *, unnest(range(n_orders)) AS j FROM temp._activator_demo_profile
                WHERE n_orders > 0
            )
        ), h AS (
            SELECT o.*, __HASH_COLUMNS__ FROM o
        ), t AS (
            SELECT h.*,
                -- First and last orders pin the customer's window; the others fall inside it.
                CASE WHEN j = 0 THEN t_first WHEN j = n_orders - 1 THEN t_last
                     ELSE t_first + {full.below("order_id", "t", "t_last - t_first + 1")}
                END AS t,
                -- Customers lean to store or online; online-only ones never visit a store.
                CASE WHEN home_store_id IS NULL THEN 0.0 ELSE 0.75 * {lean} END AS p_store,
                {r.u("channel")} AS u_channel,
                CASE WHEN u_channel < p_store THEN 'store'
                     WHEN u_channel < p_store + (1 - p_store) * 0.55 THEN 'web'
                     WHEN u_channel < p_store + (1 - p_store) * 0.88 THEN 'app'
                     ELSE 'marketplace' END AS channel
            FROM h
        )
        SELECT
            t.order_id,
            t.customer_id,
            make_timestamp((tm.day_epoch
                + 3600 * CASE WHEN channel = 'store'
                    THEN {_case_weighted(r.below("hour", _total(_HOURS_STORE)), _HOURS_STORE)}
                    ELSE {_case_weighted(r.below("hour", _total(_HOURS_ONLINE)), _HOURS_ONLINE)} END
                + {r.below("second", 3600)}) * 1000000) AS ordered_at,
            t.channel,
            CASE WHEN channel = 'store' THEN
                CASE WHEN {r.u("other_store")} < 0.15 THEN alt_store_id ELSE home_store_id END
            END::INTEGER AS store_id,
            -- Online orders come back more often than store purchases.
            {r.u("returned")} < CASE channel WHEN 'store' THEN 0.035
                WHEN 'marketplace' THEN 0.09 ELSE 0.072 END AS is_returned,
            {_case_weighted(r.below("lines", _total(_N_LINES)), _N_LINES)} AS n_lines,
            {r.u("discount")} AS u_discount,
            t.favourite,
            t.second
        FROM t JOIN temp._activator_demo_time tm ON tm.t = t.t
    """
    return body.replace("__HASH_COLUMNS__", r.columns())


def _create_order_skeleton(con: duckdb.DuckDBPyConnection, seed: int) -> None:
    # The orders of the current block, materialised once: order_items and orders both read it,
    # and unnest() is the costliest step of generation.
    con.execute(f"CREATE OR REPLACE TEMP TABLE _activator_demo_orders AS {_order_skeleton(seed)}")


def _into(table: str, create: bool) -> str:
    """The start of a statement that writes a query's rows into ``table``.

    The first block creates (or replaces) the table from its query, so its columns have the
    query's types; the other blocks append to it.
    """
    return f"CREATE OR REPLACE TABLE {table} AS" if create else f"INSERT INTO {table}"


def _insert_order_items(con: duckdb.DuckDBPyConnection, seed: int, *, create: bool) -> None:
    """Writes the lines of the current block's orders (those of the order skeleton)."""
    r = _Draws(seed, "order_items", "order_id, l", prefix="_l")
    max_lines = max(n for n, _ in _N_LINES)
    body = f"""
        {_into("order_items", create)}
        WITH l AS (
            -- A cross join with a filter fans out small counts ~4x faster than unnest(range()).
            SELECT order_id, customer_id, ordered_at, favourite, second, l
            FROM temp._activator_demo_orders CROSS JOIN range({max_lines}) r(l)
            WHERE l < n_lines
        ), h AS (
            SELECT l.*, __HASH_COLUMNS__ FROM l
        ), c AS (
            SELECT h.*,
                -- Customers mostly buy from their favourite category, which makes it meaningful.
                CASE WHEN {r.u("category")} < 0.55 THEN favourite
                     WHEN {r.u("category")} < 0.70 THEN second
                     ELSE {
        _case_weighted(r.below("any_category", _total(_POPULARITY)), _POPULARITY)
    }
                END AS cat
            FROM h
        ), p AS (
            -- Within a category a few products sell much more than the rest.
            SELECT c.*,
                ({_case_index("cat", _category_starts())}
                 + floor({_case_index("cat", [c[1] for c in _CATEGORIES])}
                         * pow({r.u("product")}, 2.5))::INTEGER) AS pid
            FROM c
        )
        SELECT
            p.order_id,
            p.customer_id,
            p.ordered_at,
            (p.l + 1)::INTEGER AS line_number,
            p.pid::INTEGER AS product_id,
            pr.product_name,
            pr.category,
            pr.brand,
            {
        _case_weighted(r.below("quantity", _total(_QUANTITY)), _QUANTITY)
    }::INTEGER AS quantity,
            -- Some lines are marked down from the list price.
            {
        _money(
            f"(pr.list_price * 100)::BIGINT * (100 - "
            f"{_case_weighted(r.below('markdown', _total(_MARKDOWN_PCT)), _MARKDOWN_PCT)}) // 100"
        )
    }
                AS price
        FROM p JOIN products pr ON pr.product_id = p.pid
    """
    con.execute(body.replace("__HASH_COLUMNS__", r.columns()))


def _insert_orders(
    con: duckdb.DuckDBPyConnection, order_ids: tuple[int, int], *, create: bool
) -> None:
    """Orders with amounts that are exactly the sum of their lines, less the discount.

    For the current block, whose orders (those of the order skeleton) have the ids
    ``order_ids[0]`` to ``order_ids[1]``, inclusive, and whose lines are already written.
    """
    first, last = order_ids
    con.execute(
        f"""
        {_into("orders", create)}
        WITH s AS (SELECT * FROM temp._activator_demo_orders
        ), i AS (
            -- Summing integer cents is exact and ~4x faster than summing DECIMAL products.
            -- Only this block's lines: the aggregate stays the size of a block, and the
            -- filter skips the row groups of earlier blocks.
            SELECT order_id, sum(quantity * (price * 100)::BIGINT) AS subtotal_cents
            FROM order_items WHERE order_id BETWEEN {first:d} AND {last:d} GROUP BY order_id
        ), d AS (
            SELECT s.*, i.subtotal_cents,
                CASE
                    WHEN u_discount >= 0.22 THEN 0
                    WHEN u_discount < 0.08 THEN subtotal_cents * 10 // 100
                    WHEN u_discount < 0.13 THEN subtotal_cents * 20 // 100
                    WHEN u_discount < 0.17 AND subtotal_cents >= 4000 THEN 1000
                    WHEN subtotal_cents >= 2000 THEN 500
                    ELSE subtotal_cents * 15 // 100
                END AS discount_cents
            FROM s JOIN i USING (order_id)
        )
        SELECT
            order_id,
            customer_id,
            ordered_at,
            channel,
            store_id,
            {_money("subtotal_cents - discount_cents")} AS total,
            {_money("discount_cents")} AS discount,
            is_returned
        FROM d
        """
    )


def _insert_email_events(
    con: duckdb.DuckDBPyConnection,
    seed: int,
    as_of: datetime.date,
    block: tuple[int, int],
    *,
    create: bool,
) -> None:
    """Newsletter events of the customers of one block (ids ``block[0]`` to ``block[1]``)."""
    lo, hi = block
    r = _Draws(seed, "email_events", "customer_id, w", prefix="_e")
    c = _Rand(seed, "customers")
    # Weekly newsletter on Thursdays at 10:00, the last one strictly before as_of.
    last_thursday = as_of - datetime.timedelta(days=(as_of.weekday() - 3 - 1) % 7 + 1)
    themes = """CASE
        WHEN month(send_day) = 11 AND day(send_day) >= 15 THEN 'Black Friday early access'
        WHEN month(send_day) = 12 AND day(send_day) <= 20 THEN 'Holiday gift guide'
        WHEN month(send_day) = 12 THEN 'Winter sale'
        WHEN month(send_day) = 1 THEN 'New year, new you'
        WHEN month(send_day) = 2 THEN 'Valentine''s Day picks'
        WHEN month(send_day) = 5 THEN 'Mother''s Day gifts'
        WHEN month(send_day) IN (7, 8) THEN 'Summer sale'
        WHEN month(send_day) = 9 THEN 'Back to school'
        WHEN w % 2 = 0 THEN 'New arrivals'
        ELSE 'Members'' favourites'
    END"""
    as_of_epoch = f"epoch(TIMESTAMP '{as_of.isoformat()}')::BIGINT"
    body = f"""
        {_into("email_events", create)}
        WITH weeks AS (
            -- Per-week values are computed once, not once per recipient.
            SELECT w, epoch(send_day::TIMESTAMP)::BIGINT + 36000 AS send_epoch,
                {themes} || ' ' || strftime(send_day, '%Y-%m-%d') AS campaign_name
            FROM (
                SELECT range AS w, DATE '{last_thursday.isoformat()}' - (7 * range)::INTEGER
                    AS send_day
                FROM range({_EMAIL_WEEKS})
            )
        ), eligible AS (
            SELECT c.customer_id, epoch(c.signup_at)::BIGINT AS signup_epoch,
                -- Engagement varies: a quarter barely open, a few open most emails. Buyers are
                -- more engaged than people who never ordered.
                {c.u("c.customer_id", "engagement")}
                    * CASE WHEN p.kind = 'never' THEN 0.8 ELSE 1.0 END AS u_engagement,
                CASE WHEN u_engagement < 0.25
                        THEN 0.02 + 0.06 * {c.u("c.customer_id", "open_rate")}
                     WHEN u_engagement < 0.85
                        THEN 0.15 + 0.25 * {c.u("c.customer_id", "open_rate")}
                     ELSE 0.45 + 0.30 * {c.u("c.customer_id", "open_rate")} END AS open_rate,
                0.05 + 0.25 * {c.u("c.customer_id", "click_rate")} AS click_rate
            FROM customers c JOIN temp._activator_demo_profile p USING (customer_id)
            WHERE c.customer_id BETWEEN {lo:d} AND {hi:d}
                AND c.email_opt_in AND regexp_full_match(trim(lower(c.email)),
                                                      '[^@ ]+@[^@ ]+\\.[a-z]+')
        ), h AS (
            SELECT eligible.*, weeks.*, __HASH_COLUMNS__
            FROM eligible CROSS JOIN weeks
            WHERE weeks.send_epoch > eligible.signup_epoch
        ), sends AS (
            SELECT customer_id, campaign_name,
                -- Sends go out in batches over an hour and a half.
                send_epoch + {r.below("batch", 5400)} AS sent,
                {r.u("open")} < open_rate AS opened,
                {r.u("click")} < click_rate AS clicked,
                -- Most opens come within hours, some days later; clicks follow the open.
                sent + 60 + floor(259200 * pow({r.u("open_delay")}, 3))::BIGINT AS open,
                open + 5 + floor(3600 * pow({r.u("click_delay")}, 2))::BIGINT AS click
            FROM h
        ), events AS (
            SELECT customer_id, campaign_name, e,
                CASE e WHEN 0 THEN sent WHEN 1 THEN open ELSE click END AS at_epoch
            FROM sends CROSS JOIN range(3) r(e)
            WHERE e = 0 OR (e = 1 AND opened) OR (e = 2 AND opened AND clicked)
        )
        SELECT
            customer_id,
            make_timestamp(at_epoch * 1000000) AS occurred_at,
            CASE e WHEN 0 THEN 'sent' WHEN 1 THEN 'open' ELSE 'click' END AS event_type,
            campaign_name
        FROM events
        WHERE at_epoch < {as_of_epoch}
    """
    con.execute(body.replace("__HASH_COLUMNS__", r.columns()))


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def generate(
    con: duckdb.DuckDBPyConnection,
    *,
    customers: int,
    seed: int,
    as_of: datetime.date,
    progress: Callable[[str], None] | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> DemoCounts:
    """Creates (or replaces) the demo retail tables in the connection's current schema.

    Tables: ``stores``, ``products``, ``customers``, ``orders``, ``order_items`` and
    ``email_events``. The same ``customers``, ``seed`` and ``as_of`` give identical tables with
    the same DuckDB version, whatever ``block_size``; orders end the day before ``as_of``.

    Customers and everything that belongs to them (their orders, order lines and email events)
    are generated in blocks of ``block_size`` consecutive customer ids, so the memory needed
    depends on the block size, not on the number of customers.

    Args:
        con: An open DuckDB connection.
        customers: Number of customers; orders average about ten per customer.
        seed: Seed of every pseudo-random value.
        as_of: The as-of date: all orders and events are strictly before its midnight.
        progress: Called before each table is generated with ``"Generating <table>"``; tables
            come in the order stores, products, customers, order_items, orders, email_events
            (lines before orders, whose totals are computed from them). With more than one
            block, the last four are reported for each block in turn, as
            ``"Generating <table> (block <i>/<n>)"``.
        block_size: Number of customers generated at a time. An implementation detail that
            trades memory for a little overhead per block; it does not change the data.

    Returns:
        The row count of each table.

    Raises:
        ValueError: If ``customers`` or ``block_size`` is not positive.
    """
    if customers < 1:
        raise ValueError(f"customers must be at least 1, got {customers}")
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, got {block_size}")
    seed = int(seed)
    report = progress or (lambda _message: None)
    blocks = [
        (lo, min(lo + block_size - 1, customers)) for lo in range(1, customers + 1, block_size)
    ]
    try:
        report("Generating stores")
        _create_stores(con, seed)
        report("Generating products")
        _create_products(con, seed)
        orders = 0  # orders of the blocks done so far; order ids continue from there
        for number, block in enumerate(blocks, start=1):
            first = number == 1
            suffix = f" (block {number}/{len(blocks)})" if len(blocks) > 1 else ""
            report(f"Generating customers{suffix}")
            if first:
                total_t, bounds = _create_time(con, as_of)
                _create_customers(con)
            block_orders = _create_profile(con, seed, block, orders, total_t, bounds)
            _insert_customers(con, seed, as_of)
            # Lines first: an order's total is the sum of its lines.
            report(f"Generating order_items{suffix}")
            _create_order_skeleton(con, seed)
            _insert_order_items(con, seed, create=first)
            report(f"Generating orders{suffix}")
            _insert_orders(con, (orders + 1, orders + block_orders), create=first)
            report(f"Generating email_events{suffix}")
            _insert_email_events(con, seed, as_of, block, create=first)
            orders += block_orders
    finally:
        con.execute("DROP TABLE IF EXISTS temp._activator_demo_profile")
        con.execute("DROP TABLE IF EXISTS temp._activator_demo_time")
        con.execute("DROP TABLE IF EXISTS temp._activator_demo_orders")
    return DemoCounts(
        stores=_count(con, "stores"),
        products=_count(con, "products"),
        customers=_count(con, "customers"),
        orders=_count(con, "orders"),
        order_items=_count(con, "order_items"),
        email_events=_count(con, "email_events"),
    )
