"""Text columns built from codes (`models.gates.texts_of`, the ranked territory): the arrays pandas makes of the
same Python strings, missing values included, in both of pandas' text dtypes."""

import numpy as np
import pandas as pd
import pytest

from models.decision import _ranked_text
from models.gates import texts_of


@pytest.mark.parametrize("dtype", ["str", "string"])
def test_texts_of_codes_are_pandas_own_text_array(dtype):
    labels = ["pass", "unknown", "fail", "ünï, \"q\""]
    codes = np.random.default_rng(3).integers(-1, len(labels), 5_000)
    python = np.array([labels[c] if c >= 0 else None for c in codes], dtype=object)
    built = pd.Series(texts_of(codes, labels, dtype))
    pd.testing.assert_series_equal(built, pd.Series(python, dtype=dtype))
    assert built.isna().sum() == (codes < 0).sum() > 0
    pd.testing.assert_series_equal(pd.Series(texts_of(np.array([], dtype=np.int8), labels, dtype)),
                                   pd.Series([], dtype=dtype))


@pytest.mark.parametrize("values", [
    pd.Series(pd.Categorical(["EU", None, "NA", "EU", "APAC"], categories=["EU", "NA", "APAC", "LATAM"])),
    pd.Series(pd.Categorical([3, 1, None, 3, 1])),  # categories of numbers: pandas' own conversion
    pd.Series(["EU", None, "NA", "EU", "APAC"], dtype="string"),
    pd.Series([1.0, np.nan, 2.5, 1.0, 3.0]),
])
def test_a_ranked_text_column_is_the_column_as_text_in_rank_order(values):
    order = np.array([4, 2, 0, 1, 3])
    pd.testing.assert_series_equal(pd.Series(_ranked_text(values, order)),
                                   values.astype("str").take(order).reset_index(drop=True))
