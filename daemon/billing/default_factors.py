"""The small default factor table Stallbox ships: categories to cited factors.

Each row names the dataset and version, the record id in that dataset and the
figure exactly as published there, so an auditor can look every value up.
Food is mass-based (ADEME Agribalyse 3.1, "Changement climatique", kg CO2e per
kg as sold, with the row's DQR); other goods are spend-based (US EPA Supply
Chain GHG Emission Factors v1.2, NAICS-6, "with margins", kg CO2e per 2021
USD of purchaser price). The tests check every row against the official files.

Packaging materials have no default here: neither dataset gives kg CO2e per kg
of glass, paper or plastic, and no material dataset is available to cite, so a
stall that wants packaging in its estimate configures its material factors
with their source ([carbon.materials.NAME] in the config, factor id
"material:NAME"; daemon/sales/settings.py).
"""

from __future__ import annotations

from daemon.billing.factors import (
    AGRIBALYSE,
    EPA_SUPPLY_CHAIN,
    SPEND_DEFAULT_UNCERTAINTY,
    EmissionFactor,
    FactorTable,
    dqr_uncertainty,
    factor_table,
    parse_decimal,
)

AGRIBALYSE_VERSION = "3.1"
EPA_VERSION = "1.2"
EPA_PRICE_YEAR = 2021

# (category, Agribalyse "Code AGB", LCI name, kg CO2e per kg, DQR)
AGRIBALYSE_ROWS: tuple[tuple[str, str, str, str, str], ...] = (
    ("honey", "31008", "Honey", "1.57", "2.53"),
    ("jam_strawberry", "31024", "Jam, strawberry", "1.75", "2.95"),
    ("jam_apricot", "31037", "Jam, apricot", "1.69", "2.5"),
    (
        "spread_chocolate_hazelnut",
        "31032",
        "Chocolate spread with hazelnuts",
        "9.11",
        "1.56",
    ),
    (
        "bread_sourdough",
        "7002",
        "Bread, French bread (baguette or ball), with yeast",
        "0.748",
        "2.2",
    ),
    (
        "bread_seeded",
        "7255",
        "Bread, French bread, (baguette or ball), multigrain, from bakery",
        "1.13",
        "2.22",
    ),
    ("croissant", "7620", "Croissant, butter, from bakery", "2.94", "1.28"),
    (
        "pain_au_chocolat",
        "7730",
        "Chocolate croissant, puff pastry, from bakery",
        "5.73",
        "1.3",
    ),
    ("gingerbread", "23200", "Gingerbread", "2.5", "1.8"),
    ("biscuit_butter", "24049", "Biscuit shortbread, with butter", "3.38", "1.41"),
    ("crepe", "23799", "Crepe, plain, prepacked, refrigerated", "1.5", "1.34"),
    (
        "creme_brulee",
        "39213",
        "Caramelized custard cream (crème brûlée), refrigerated",
        "2.18",
        "1.24",
    ),
    ("ice_cream", "39515", "Ice cream, in box", "1.96", "1.44"),
    (
        "chocolate_dark",
        "31074",
        "Dark chocolate bar, more than 70% cocoa",
        "19.1",
        "1.89",
    ),
    (
        "chocolate_milk",
        "31009",
        "Milk chocolate bar, with puffed/popped cereals",
        "12.6",
        "1.81",
    ),
    ("cheese_goat", "12812", "Cheese, buche, from goat's milk", "5.91", "2"),
    ("cheese_hard", "12110", "Comté cheese, from cow's milk", "6.38", "1.77"),
    ("sausage_dry", "30300", "Dry sausage", "7.33", "2.96"),
    ("pesto", "11179", "Sauce, pesto, prepacked", "2.88", "2.08"),
    ("olive_oil", "17270", "Olive oil, extra virgin", "1.63", "2.21"),
    ("walnuts", "15005", "Walnut, dried, husked", "4.11", "2.84"),
    ("apple", "13039", "Apple, pulp and peel, raw", "0.408", "2.01"),
    ("apple_juice", "2074", "Apple juice, pure juice", "0.567", "2.43"),
    ("lemonade", "18010", "Lemonade, with sugar", "0.493", "1.84"),
    ("cider", "5006", "Cider, dry", "1.33", "2.4"),
    ("beer", "5001", "Beer, regular (4-5° alcohol)", "1.35", "2.24"),
    ("wine_red", "5214", "Wine, red", "1.27", "2.16"),
    ("coffee_ground", "18003", "Coffee, ground", "8.4", "3.67"),
    (
        "coffee_brewed",
        "18004",
        "Not instant coffee, without sugar, ready-to-drink",
        "0.635",
        "3.44",
    ),
    ("tea_brewed", "18020", "Tea, brewed, without sugar", "0.0436", "2.94"),
    ("herbal_tea", "18022", "Infusion, brewed, without sugar", "0.0436", "3.58"),
    ("maple_syrup", "31034", "Syrup, maple", "2.3", "1.4"),
)

# (category, 2017 NAICS code, NAICS title, kg CO2e per 2021 USD with margins)
EPA_ROWS: tuple[tuple[str, str, str, str], ...] = (
    ("soap", "325611", "Soap and Other Detergent Manufacturing", "0.405"),
    ("cosmetics", "325620", "Toilet Preparation Manufacturing", "0.199"),
    ("crafts_misc", "339999", "All Other Miscellaneous Manufacturing", "0.225"),
    (
        "ceramics",
        "327110",
        "Pottery, Ceramics, and Plumbing Fixture Manufacturing",
        "0.398",
    ),
    ("jewelry", "339910", "Jewelry and Silverware Manufacturing", "0.156"),
    ("yarn", "313110", "Fiber, Yarn, and Thread Mills", "0.837"),
    ("textiles_home", "314120", "Curtain and Linen Mills", "0.22"),
    (
        "apparel_accessories",
        "315990",
        "Apparel Accessories and Other Apparel Manufacturing",
        "0.145",
    ),
    (
        "leather_goods",
        "316998",
        "All Other Leather Good and Allied Product Manufacturing",
        "0.256",
    ),
    ("woodwork", "321999", "All Other Miscellaneous Wood Product Manufacturing", "0.2"),
    (
        "prints_cards",
        "323111",
        "Commercial Printing (except Screen and Books)",
        "0.347",
    ),
    ("books", "511130", "Book Publishers", "0.125"),
    ("toys", "339930", "Doll, Toy, and Game Manufacturing", "0.187"),
    (
        "furniture_wood",
        "337122",
        "Nonupholstered Wood Household Furniture Manufacturing",
        "0.213",
    ),
)

# The stall default for unmapped goods: a broad manufacturing average.
DEFAULT_CATEGORY = "crafts_misc"


def default_factors() -> tuple[EmissionFactor, ...]:
    """Return the shipped factors, built from the cited rows above."""
    food = tuple(
        EmissionFactor(
            f"agribalyse-{AGRIBALYSE_VERSION}:{code}",
            AGRIBALYSE,
            AGRIBALYSE_VERSION,
            code,
            name,
            "mass",
            parse_decimal(value),
            dqr_uncertainty(parse_decimal(dqr)),
            f"DQR {dqr}",
        )
        for _, code, name, value, dqr in AGRIBALYSE_ROWS
    )
    goods = tuple(
        EmissionFactor(
            f"epa-sc-{EPA_VERSION}:{code}",
            EPA_SUPPLY_CHAIN,
            EPA_VERSION,
            code,
            title,
            "spend",
            parse_decimal(value),
            SPEND_DEFAULT_UNCERTAINTY,
            "stated default for spend-based factors",
            EPA_PRICE_YEAR,
        )
        for _, code, title, value in EPA_ROWS
    )
    return food + goods


def default_categories() -> dict[str, str]:
    """Return category -> factor id for the shipped table."""
    food = {
        c: f"agribalyse-{AGRIBALYSE_VERSION}:{code}" for c, code, *_ in AGRIBALYSE_ROWS
    }
    goods = {c: f"epa-sc-{EPA_VERSION}:{code}" for c, code, *_ in EPA_ROWS}
    return food | goods


def default_table() -> FactorTable:
    """Return the shipped factor table with its version hash."""
    return factor_table(default_factors())
