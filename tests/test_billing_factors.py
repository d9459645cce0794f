"""Tests for daemon.billing.factors and the shipped default table."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from daemon.billing.default_factors import (
    AGRIBALYSE_ROWS,
    DEFAULT_CATEGORY,
    EPA_ROWS,
    default_categories,
    default_table,
)
from daemon.billing.factors import (
    AGRIBALYSE,
    EPA_SUPPLY_CHAIN,
    LoadResult,
    Rejected,
    canonical_factor,
    dqr_uncertainty,
    factor_from_json,
    factor_table,
    factor_to_json,
    load_agribalyse,
    load_epa_supply_chain,
    parse_decimal,
)
from daemon.errors import InputError

CARBON = Path(__file__).resolve().parents[2] / "shared" / "data" / "carbon"
AGRIBALYSE_CSV = CARBON / "agribalyse-3.1_synthese_ADEME.csv"
EPA_CSV = CARBON / "USEPA_SupplyChainGHGEmissionFactors_v1.2_NAICS_CO2e_USD2021.csv"
AGB_HEADER = (
    '"Code AGB","Nom du Produit en Français","LCI Name","DQR","Changement climatique"'
)
EPA_HEADER = (
    '"2017 NAICS Code","2017 NAICS Title","GHG","Unit",'
    '"Supply Chain Emission Factors with Margins"'
)


@pytest.fixture(scope="module")
def agribalyse() -> LoadResult:
    return load_agribalyse(AGRIBALYSE_CSV)


@pytest.fixture(scope="module")
def epa() -> LoadResult:
    return load_epa_supply_chain(EPA_CSV)


def test_shared_agribalyse_imports_every_row(agribalyse: LoadResult) -> None:
    assert (agribalyse.dataset, agribalyse.version) == (AGRIBALYSE, "3.1")
    assert len(agribalyse.factors) == 2451 and agribalyse.rejected == ()

    honey = factor_table(agribalyse.factors).get("agribalyse-3.1:31008")
    assert honey.name == "Honey" and honey.basis == "mass"
    assert honey.kg_co2e_per_unit == Fraction("1.57")
    assert honey.uncertainty == Fraction(3, 10) and honey.quality == "DQR 2.53"


def test_shared_epa_imports_every_row(epa: LoadResult) -> None:
    assert (epa.dataset, epa.version) == (EPA_SUPPLY_CHAIN, "1.2")
    assert len(epa.factors) == 1016 and epa.rejected == ()

    coffee = factor_table(epa.factors).get("epa-sc-1.2:311920")
    assert coffee.name == "Coffee and Tea Manufacturing"
    assert coffee.kg_co2e_per_unit == Fraction("0.549")
    assert (coffee.basis, coffee.price_year) == ("spend", 2021)


def test_every_default_factor_is_the_published_figure(
    agribalyse: LoadResult, epa: LoadResult
) -> None:
    official = factor_table(agribalyse.factors + epa.factors)
    shipped = default_table()

    assert len(shipped.factors) == len(AGRIBALYSE_ROWS) + len(EPA_ROWS) >= 36
    for factor_id, factor in shipped.factors.items():
        assert factor == official.get(factor_id), factor_id
    assert default_categories()[DEFAULT_CATEGORY] in shipped.factors


def test_malformed_rows_are_rejected_with_row_numbers(tmp_path: Path) -> None:
    path = tmp_path / "agribalyse-3.1_test.csv"
    path.write_text(
        "\n".join(
            [
                AGB_HEADER,
                '"1","Pain","Bread","2.2","0.748"',
                '"2","Sans valeur","No value","2.2",""',
                '"3","Texte","Text","2.2","beaucoup"',
                '"4","Négatif","Negative","2.2","-1"',
                '"5","DQR faux","Bad DQR","7","1.0"',
                '"","Sans code","No code","2.2","1.0"',
                '"7","Note\nsur deux lignes","Two lines","1.5","2.93e-7"',
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    result = load_agribalyse(path)

    assert [f.record_id for f in result.factors] == ["1", "7"]
    assert result.factors[1].kg_co2e_per_unit == Fraction(293, 10**9)
    assert [r.row for r in result.rejected] == [3, 4, 5, 6, 7]
    assert "Changement climatique" in result.rejected[0].reason
    assert "beaucoup" in result.rejected[1].reason
    assert "negative" in result.rejected[2].reason
    assert "DQR" in result.rejected[3].reason
    assert "Code AGB" in result.rejected[4].reason


def test_malformed_epa_rows_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "epa_v1.2_x.csv"
    unit = '"kg CO2e/2021 USD, purchaser price"'
    path.write_text(
        "\n".join(
            [
                EPA_HEADER,
                f'311920,"Coffee","All GHGs",{unit},0.549',
                f'3119,"Short code","All GHGs",{unit},0.5',
                '311930,"Wrong unit","All GHGs","kg CO2e/EUR",0.4',
                f'311940,"Empty","All GHGs",{unit},',
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    result = load_epa_supply_chain(path)

    assert [f.record_id for f in result.factors] == ["311920"]
    assert result.rejected == (
        Rejected(3, "NAICS code '3119' is not six digits"),
        Rejected(4, "unit 'kg CO2e/EUR' is not kg CO2e per USD"),
        Rejected(5, "missing 'Supply Chain Emission Factors with Margins'"),
    )


def test_unreadable_files_are_refused(tmp_path: Path) -> None:
    latin = tmp_path / "agribalyse-3.1_latin1.csv"
    latin.write_bytes((AGB_HEADER + '\n"1","Crème","Cream","2","1"\n').encode("cp1252"))
    with pytest.raises(InputError, match="not UTF-8"):
        load_agribalyse(latin)

    empty = tmp_path / "agribalyse-3.1_empty.csv"
    empty.write_text(AGB_HEADER + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="no rows"):
        load_agribalyse(empty)

    with pytest.raises(InputError, match="version"):
        load_agribalyse(tmp_path / "foods.csv")


def test_dqr_bands() -> None:
    assert [
        dqr_uncertainty(Fraction(x)) for x in ("1", "1.6", "2", "2.5", "3.7", "5")
    ] == [Fraction(n, 10) for n in (1, 1, 2, 3, 5, 7)]
    with pytest.raises(InputError, match="between 1 and 5"):
        dqr_uncertainty(Fraction("5.01"))


def test_parse_decimal_is_exact_and_strict() -> None:
    assert parse_decimal("2.93e-7") == Fraction(293, 10**9)
    assert parse_decimal(" 19.1 ") == Fraction(191, 10)
    for bad in ("", "1,5", "nan", "inf", "1e", "0x10"):
        with pytest.raises(InputError):
            parse_decimal(bad)


def test_table_hash_names_the_content() -> None:
    table = default_table()
    assert table.version_hash == default_table().version_hash
    factors = list(table.factors.values())
    changed = factor_from_json({**factor_to_json(factors[0]), "value": "1.58"})
    assert factor_table([changed, *factors[1:]]).version_hash != table.version_hash
    assert factor_from_json(factor_to_json(factors[0])) == factors[0]
    assert canonical_factor(factors[0]).startswith('{"basis":"mass"')
    with pytest.raises(InputError, match="twice"):
        factor_table(factors[:1] * 2)
