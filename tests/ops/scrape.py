"""Reading Prometheus text as Prometheus does: parsed by prometheus_client.parser."""
from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families


@dataclass
class Scrape:
    samples: dict[tuple[str, frozenset], float]
    types: dict[str, str]

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; 0 when the series does not exist (yet)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def total(self, name: str, **labels: str) -> float:
        """The sum over the series of `name` whose labels include `labels`."""
        wanted = set(labels.items())
        return sum(v for (n, lbls), v in self.samples.items() if n == name and wanted <= set(lbls))

    def label_values(self) -> set[str]:
        return {value for (_, labels) in self.samples for _, value in labels}

    def series(self, name: str) -> list[dict[str, str]]:
        return [dict(labels) for (n, labels) in self.samples if n == name]


def parse(text: str) -> Scrape:
    samples, types = {}, {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Scrape(samples, types)


def scrape(url: str, token: str | None = None) -> Scrape:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(url, headers=headers, timeout=20)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)
