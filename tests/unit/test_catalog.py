from pathlib import Path

import pytest

from billing.catalog import CatalogError, UnknownPlan, load_catalog, parse_catalog
from billing.intervals import Interval, Line, Product


def plan(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "code": "essentiel",
        "product": "einvoicing",
        "name": "Essentiel",
        "prices": {"monthly": 1900, "annual": 19000},
        "quota": {"monthly": 50, "annual": 600},
        "overage": 25,
    }
    base.update(overrides)
    return base


def test_default_catalogue_has_einvoicing_plans_payments_addon_and_bundle() -> None:
    catalog = load_catalog()
    products = {p.product for p in catalog}
    assert products == {Product.EINVOICING, Product.PAYMENTS, Product.BUNDLE}
    bundle = next(p for p in catalog if p.product is Product.BUNDLE)
    assert bundle.lines == (Line.EINVOICING, Line.PAYMENTS)


def test_bundle_is_cheaper_than_its_parts_in_the_default_catalogue() -> None:
    catalog = load_catalog()
    bundle = catalog.plan("pack-essentiel")
    parts = catalog.plan("essentiel").price(Interval.MONTHLY) + catalog.plan("paiements").price(Interval.MONTHLY)
    assert bundle.price(Interval.MONTHLY) < parts


def test_plan_gives_price_and_quota_per_interval() -> None:
    catalog = parse_catalog([plan()])
    essentiel = catalog.plan("essentiel")
    assert essentiel.price(Interval.ANNUAL) == 19000
    assert essentiel.quota_for(Interval.MONTHLY) == 50


def test_unknown_plan_is_named() -> None:
    with pytest.raises(UnknownPlan, match="'gold'"):
        parse_catalog([plan()]).plan("gold")


def test_a_plan_may_offer_one_interval_only() -> None:
    catalog = parse_catalog([plan(prices={"monthly": 1900}, quota={"monthly": 50})])
    assert catalog.plan("essentiel").offers(Interval.MONTHLY)
    assert not catalog.plan("essentiel").offers(Interval.ANNUAL)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (plan(product="fax"), r"plan 'essentiel' \(#1\): product: "),
        (plan(prices={"monthly": -1, "annual": 19000}),
         r"plan 'essentiel' \(#1\): prices\.monthly: .*greater than or equal to 0"),
        (plan(prices={"monthly": 19.5, "annual": 19000}), r"plan 'essentiel' \(#1\): prices\.monthly: "),
        (plan(quota={"monthly": 50}), r"plan 'essentiel' \(#1\): .*quota: missing interval annual"),
        (plan(prices={}, quota={}), r"plan 'essentiel' \(#1\): .*offers no interval"),
        (plan(prices={"weekly": 10}, quota={"weekly": 1}), r"plan 'essentiel' \(#1\): prices\.weekly"),
        (plan(overage=-5), r"plan 'essentiel' \(#1\): overage: "),
        (plan(name=None), r"plan 'essentiel' \(#1\): name: "),
        ({"product": "einvoicing"}, r"plan #1: code: Field required"),
        (plan(colour="red"), r"colour: Extra inputs"),
    ],
)
def test_bad_plan_fails_naming_plan_and_field(bad: dict[str, object], message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        parse_catalog([bad])


def test_duplicate_code_fails_naming_both_plans() -> None:
    with pytest.raises(CatalogError, match=r"plan 'essentiel' \(#2\): code: duplicate of plan #1"):
        parse_catalog([plan(), plan(name="Other")])


def test_empty_catalogue_is_refused() -> None:
    with pytest.raises(CatalogError, match="non-empty list"):
        parse_catalog([])


def test_unreadable_catalogue_file_is_named(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CatalogError, match="cannot read catalogue"):
        load_catalog(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("- code: [unclosed\n")
    with pytest.raises(CatalogError, match="not valid YAML"):
        load_catalog(broken)


def test_a_plan_code_longer_than_the_store_holds_is_refused_naming_the_field() -> None:
    parse_catalog([plan(code="a" * 64)])  # the String(64) column holds this one
    with pytest.raises(CatalogError, match=r"\(#1\): code: String should have at most 64 characters"):
        parse_catalog([plan(code="a" * 65)])


def test_a_plan_name_longer_than_a_notice_subject_takes_is_refused_naming_the_field() -> None:
    parse_catalog([plan(name="n" * 200)])
    with pytest.raises(CatalogError, match=r"plan 'essentiel' \(#1\): name: String should have at most 200 characters"):
        parse_catalog([plan(name="n" * 400)])


@pytest.mark.parametrize(
    ("features", "message"),
    [
        (["f" * 201], r"features\.0: String should have at most 200 characters"),
        (["archiving", ""], r"features\.1: String should have at least 1 character"),
        ([f"feature {i}" for i in range(51)], r"features: Tuple should have at most 50 items"),
    ],
)
def test_a_feature_too_long_empty_or_one_too_many_is_refused_naming_the_field(
        features: list[str], message: str) -> None:
    with pytest.raises(CatalogError, match=r"plan 'essentiel' \(#1\): " + message):
        parse_catalog([plan(features=features)])


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (plan(prices={"monthly": 10**19, "annual": 19000}), r"prices\.monthly"),
        (plan(prices={"monthly": 1900, "annual": 100_000_000}), r"prices\.annual"),
        (plan(overage=100_000_000), "overage"),
    ],
)
def test_a_price_stripe_could_never_charge_is_refused_naming_the_field(bad: dict[str, object], field: str) -> None:
    with pytest.raises(CatalogError, match=rf"plan 'essentiel' \(#1\): {field}: .*less than or equal to 99999999"):
        parse_catalog([bad])


def test_the_largest_price_stripe_charges_still_loads_and_one_cent_more_does_not() -> None:
    parse_catalog([plan(prices={"monthly": 99_999_999}, quota={"monthly": 0}, overage=99_999_999)])
    with pytest.raises(CatalogError, match=r"prices\.monthly: "):
        parse_catalog([plan(prices={"monthly": 100_000_000}, quota={"monthly": 0})])


def test_a_quota_beyond_a_postgresql_integer_is_refused_naming_the_interval() -> None:
    parse_catalog([plan(quota={"monthly": 2_147_483_647, "annual": 600})])
    with pytest.raises(CatalogError, match=r"\(#1\): quota\.monthly: .*less than or equal to 2147483647"):
        parse_catalog([plan(quota={"monthly": 2_147_483_648, "annual": 600})])


def test_a_bad_value_in_a_catalogue_file_is_refused_at_load_naming_plan_and_field(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(
        "- code: essentiel\n  product: einvoicing\n  name: Essentiel\n"
        "  prices: {monthly: 10000000000000000000}\n  quota: {monthly: 50}\n"
    )
    with pytest.raises(CatalogError, match=r"^plan 'essentiel' \(#1\): prices\.monthly: "):
        load_catalog(path)
