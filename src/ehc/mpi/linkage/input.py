"""Step 1a: read a hospital's patient list (CSV or Parquet) into rows of text with our column names."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .common import LinkInputError

INPUT_COLUMNS = ("mrn", "name", "sex", "birth_date", "phone", "id_type", "id_number", "address", "region_code")

# Header names hospitals' systems commonly export, mapped to ours (matched after trimming, lower-case).
HEADER_ALIASES = {
    "住院号": "mrn", "病案号": "mrn", "门诊号": "mrn", "患者编号": "mrn", "病人id": "mrn", "登记号": "mrn",
    "patient_id": "mrn", "patient_number": "mrn", "hospital_mrn": "mrn", "medical_record_number": "mrn",
    "姓名": "name", "患者姓名": "name",
    "性别": "sex", "gender": "sex",
    "出生日期": "birth_date", "生日": "birth_date", "dob": "birth_date", "date_of_birth": "birth_date",
    "手机号": "phone", "手机号码": "phone", "联系电话": "phone", "电话": "phone", "mobile": "phone",
    "证件类型": "id_type", "document_type": "id_type",
    "证件号码": "id_number", "身份证号": "id_number", "身份证号码": "id_number", "document_number": "id_number",
    "地址": "address", "住址": "address", "现住址": "address",
    "行政区划": "region_code", "行政区划代码": "region_code", "区划代码": "region_code",
}

def read_patient_list(path: Path, *, encoding: str = "utf-8-sig") -> pd.DataFrame:
    """The file's rows as text (missing = ``""``), our column names, and ``line`` (CSV line or
    Parquet row number) for the rejects. Unknown columns are dropped."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
            frame = frame.astype("string").fillna("").astype(object)
            first_line = 1
        else:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
            first_line = 2  # line 1 is the header
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as exc:
        raise LinkInputError("file_unreadable", f"Cannot read {path.name}: {exc}") from None
    renamed = {}
    for column in frame.columns:
        key = str(column).strip().lower()
        key = HEADER_ALIASES.get(key, key)
        if key in INPUT_COLUMNS and key not in renamed.values():
            renamed[column] = key
    frame = frame[list(renamed)].rename(columns=renamed)
    if "mrn" not in frame.columns:
        raise LinkInputError("mrn_column_missing",
                             f"{path.name} has no 'mrn' column (the hospital's patient number; 住院号/病案号 also work).")
    for column in INPUT_COLUMNS:
        if column not in frame.columns:
            frame[column] = ""
    frame = frame[list(INPUT_COLUMNS)]
    frame.insert(0, "line", range(first_line, first_line + len(frame)))
    return frame.reset_index(drop=True)

