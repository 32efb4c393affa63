"""CSV readers and writers (SPEC sections 6, 7 and 8)."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import date, datetime, time

import pytest

from reconciliation.csvformat import (
    RECEIPT_COLUMNS,
    RECEIPT_OPTIONAL_COLUMNS,
    FormatError,
    RowError,
    read_receipts,
    read_statement,
    write_receipts_csv,
    write_remessa,
    write_result_csv,
    write_statement_csv,
)
from reconciliation.matcher import reconcile
from reconciliation.records import Divergence, EventType, Kind, Origin, PaymentType, Receipt, StatementRow
from tests.reconciliation.factories import TZ, event, receipt, rows_like

RECEIPT_HEADER = (
    "sale_id,establishment_code,sale_datetime,amount,payment_type,brand,acquirer,installments,"
    "authorization_code,nsu,origin"
)
STATEMENT_HEADER_SC = (
    "record_id;establishment_code;acquirer;brand;payment_type;sale_date;sale_time;authorization_code;nsu;"
    "tid;txid;installments;installment_number;sale_amount;gross_amount;fee_amount;net_amount;"
    "expected_payment_date;event_type"
)


def receipts_of(data: bytes) -> list[tuple[int, Receipt | RowError]]:
    return list(read_receipts(io.BytesIO(data), TZ))


def statement_of(data: bytes) -> list[tuple[int, StatementRow | RowError]]:
    return list(read_statement(io.BytesIO(data)))


def sample_receipts() -> list[Receipt]:
    return [
        receipt("1", amount=123_456, installments=3, brand="mastercard", tid="12345678901234567890"),
        receipt("2", when="2024-03-14 23:59:59", amount=5, payment_type="debit", brand="elo", auth=None),
        receipt(
            "3",
            payment_type="pix",
            brand="pix",
            nsu=None,
            auth=None,
            txid="E0001aBc",
            origin=Origin.OTHER_RECEIPT,
        ),
    ]


# --- receipts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_receipts_round_trip_in_both_dialects(delimiter: str) -> None:
    text = io.StringIO()
    assert write_receipts_csv(sample_receipts(), text, delimiter=delimiter) == 3
    if delimiter == ";":
        assert "1.234,56" in text.getvalue()
        assert "14/03/2024 23:59:59" in text.getvalue()
    parsed = receipts_of(text.getvalue().encode())
    assert [line for line, _ in parsed] == [2, 3, 4]
    assert [r for _, r in parsed] == sample_receipts()


def test_comma_dialect_reads_dot_decimals_and_iso_datetimes() -> None:
    data = (
        RECEIPT_HEADER + "\n"
        "V1,1020304050,2024-03-14T10:00:00,1234.5,credit,VISA, Cielo ,2,a1b2c3,000123,sale\n"
        "V2,1020304050,2024-03-14T10:00:00,99,debit,elo,rede,,,,invoice_payment\n"
    ).encode()
    (_, first), (_, second) = receipts_of(data)
    assert isinstance(first, Receipt) and isinstance(second, Receipt)
    assert first.amount_cents == 123_450
    assert first.sale_datetime == datetime(2024, 3, 14, 10, 0, tzinfo=TZ)
    assert (first.brand, first.acquirer, first.authorization_code, first.nsu) == (
        "visa",
        "cielo",
        "A1B2C3",
        "000123",
    )
    assert first.tid is None
    assert second.amount_cents == 9_900
    assert second.installments == 1  # empty means à vista
    assert (second.authorization_code, second.nsu) == (None, None)
    assert second.origin is Origin.INVOICE_PAYMENT


def test_semicolon_dialect_reads_decimal_comma_thousands_and_brazilian_dates() -> None:
    header = RECEIPT_HEADER.replace(",", ";")
    data = (
        header + ";txid\n"
        "V1;1020304050;14/03/2024 10:00:00;1.234,56;crédito;visa;cielo;1;X;1;sale;\n"
        "V2;1020304050;2024-03-14T10:00:00;12,5;pix;;cielo;1;;;sale;Tx9\n"
    ).encode()
    (_, first), (_, second) = receipts_of(data)
    assert isinstance(first, Receipt) and isinstance(second, Receipt)
    assert first.amount_cents == 123_456
    assert first.payment_type is PaymentType.CREDIT
    assert first.sale_datetime == datetime(2024, 3, 14, 10, 0, tzinfo=TZ)
    assert second.amount_cents == 1_250
    assert second.brand == "pix"  # Pix without brand: the brand is pix
    assert second.txid == "Tx9"


def test_columns_in_any_order_and_unknown_columns_are_ignored() -> None:
    cols = [*list(reversed(RECEIPT_COLUMNS)), "observacao"]
    values = {
        "sale_id": "A",
        "establishment_code": "55",
        "sale_datetime": "2024-03-14T08:00:00",
        "amount": "10.00",
        "payment_type": "voucher",
        "brand": "alelo",
        "acquirer": "getnet",
        "installments": "1",
        "authorization_code": "1",
        "nsu": "2",
        "origin": "sale",
        "observacao": "qualquer coisa",
    }
    data = (",".join(cols) + "\n" + ",".join(values[c] for c in cols) + "\n").encode()
    [(line, r)] = receipts_of(data)
    assert line == 2
    assert isinstance(r, Receipt) and r.brand == "alelo" and r.amount_cents == 1000


def test_utf8_bom_is_accepted() -> None:
    data = (
        "\ufeff".encode()
        + (RECEIPT_HEADER + "\nV1,1,2024-03-14T10:00:00,1.00,debit,elo,rede,1,1,1,sale\n").encode()
    )
    [(_, r)] = receipts_of(data)
    assert isinstance(r, Receipt) and r.sale_id == "V1"


def test_excel_style_file_with_bom_quotes_crlf_and_semicolons() -> None:
    header = ";".join(f'"{c}"' for c in RECEIPT_HEADER.split(","))
    line = '"V1";"1";"14/03/2024 10:00:00";"1.234,56";"Crédito";"Visa";"Cielo";"3";"a";"1";"sale"'
    data = ("\ufeff" + header + "\r\n" + line + "\r\n\r\n").encode()
    [(number, r)] = receipts_of(data)
    assert number == 2
    assert isinstance(r, Receipt)
    assert (r.amount_cents, r.installments, r.brand, r.authorization_code) == (123_456, 3, "visa", "A")


def test_windows_1252_is_detected() -> None:
    text = (
        RECEIPT_HEADER + ",terminal\nV1,1,14/03/2024 10:00:00,1.00,débito,elo,rede,1,1,1,sale,Loja São João\n"
    )
    [(_, r)] = receipts_of(text.encode("cp1252"))
    assert isinstance(r, Receipt)
    assert r.payment_type is PaymentType.DEBIT
    assert r.terminal == "LOJA SÃO JOÃO"


def test_stray_windows_1252_bytes_after_the_sniffed_block_still_decode() -> None:
    good = "V{0},1,2024-03-14T10:00:00,1.00,debit,elo,rede,1,1,{0},sale,T1\n"
    body = "".join(good.format(i) for i in range(3000))  # well past the 64 KiB sniff
    tail = "VX,1,2024-03-14T10:00:00,1.00,débito,elo,rede,1,1,9,sale,São\n"
    data = (RECEIPT_HEADER + ",terminal\n" + body).encode() + tail.encode("cp1252")
    parsed = receipts_of(data)
    assert len(parsed) == 3001
    last = parsed[-1][1]
    assert isinstance(last, Receipt) and last.terminal == "SÃO" and last.payment_type is PaymentType.DEBIT


def test_bad_line_is_reported_with_its_line_number_and_good_lines_are_kept() -> None:
    data = (
        RECEIPT_HEADER + "\n"
        "V1,1,2024-03-14T10:00:00,10.00,debit,elo,rede,1,1,1,sale\n"
        "V2,1,2024-03-14T10:00:00,10.0.0,debit,elo,rede,1,1,2,sale\n"
        "\n"
        "V3,1,31/02/2024 10:00:00,10.00,debit,elo,rede,1,1,3,sale\n"
        "V4,1,2024-03-14T10:00:00,10.00,boleto,elo,rede,1,1,4,sale\n"
        "V5,1,2024-03-14T10:00:00,10.00,debit,elo,rede,1,1,5\n"
        "V6,1,2024-03-14T10:00:00,10.00,debit,elo,rede,1,1,6,sale\n"
    ).encode()
    parsed = receipts_of(data)
    assert [line for line, _ in parsed] == [2, 3, 5, 6, 7, 8]
    good = [r.sale_id for _, r in parsed if isinstance(r, Receipt)]
    assert good == ["V1", "V6"]
    errors = {e.line: e.reason for _, e in parsed if isinstance(e, RowError)}
    assert "amount" in errors[3] and "10.0.0" in errors[3]
    assert "sale_datetime" in errors[5]
    assert "payment_type" in errors[6] and "boleto" in errors[6]
    assert "colunas" in errors[7]
    assert str(RowError(3, "x")) == "linha 3: x"


def test_required_value_missing_names_the_column() -> None:
    data = (RECEIPT_HEADER + "\nV1,,2024-03-14T10:00:00,10.00,debit,elo,rede,1,1,1,sale\n").encode()
    [(_, error)] = receipts_of(data)
    assert isinstance(error, RowError) and "establishment_code" in error.reason


def test_semicolon_amount_with_dot_decimals_is_an_error_not_a_thousands_guess() -> None:
    header = RECEIPT_HEADER.replace(",", ";")
    data = (header + "\nV1;1;2024-03-14T10:00:00;12.50;debit;elo;rede;1;1;1;sale\n").encode()
    [(_, error)] = receipts_of(data)
    assert isinstance(error, RowError) and "amount" in error.reason and "1.234,56" in error.reason


def test_quoted_field_spanning_lines_keeps_physical_line_numbers() -> None:
    data = (
        RECEIPT_HEADER + ",terminal\n"
        'V1,1,2024-03-14T10:00:00,10.00,debit,elo,rede,1,1,1,sale,"caixa\n2"\n'
        "V2,1,2024-03-14T10:00:00,10.00,debit,elo,rede,1,1,2,sale,\n"
    ).encode()
    assert [line for line, _ in receipts_of(data)] == [2, 4]


def test_missing_required_column_fails_before_any_row() -> None:
    data = (
        RECEIPT_HEADER.replace(",nsu", "") + "\nV1,1,2024-03-14T10:00:00,1.00,debit,elo,rede,1,1,sale\n"
    ).encode()
    with pytest.raises(FormatError, match="nsu"):
        read_receipts(io.BytesIO(data), TZ)  # raised on the call, not on the first row


def test_text_stream_is_refused_with_a_clear_reason() -> None:
    with pytest.raises(TypeError, match="rb"):
        read_receipts(io.StringIO(RECEIPT_HEADER), TZ)  # type: ignore[arg-type]


def test_empty_file_is_a_format_error() -> None:
    with pytest.raises(FormatError, match="vazio"):
        read_receipts(io.BytesIO(b""), TZ)


def test_reader_streams_and_leaves_the_callers_stream_open() -> None:
    class Endless(io.RawIOBase):
        """A receipts file of unbounded length, produced as it is read."""

        def __init__(self) -> None:
            self.buffer = (RECEIPT_HEADER + "\n").encode()
            self.produced = 0
            self.biggest_read = 0

        def readable(self) -> bool:
            return True

        def readinto(self, b: memoryview) -> int:  # type: ignore[override]
            self.biggest_read = max(self.biggest_read, len(b))
            while len(self.buffer) < len(b):
                self.produced += 1
                line = (
                    f"V{self.produced},1,2024-03-14T10:00:00,1.00,debit,elo,rede,1,1,{self.produced},sale\n"
                )
                self.buffer += line.encode()
            n = len(b)
            b[:n] = self.buffer[:n]
            self.buffer = self.buffer[n:]
            return n

    source = Endless()
    rows = read_receipts(source, TZ)
    first = [next(rows) for _ in range(10)]
    assert [line for line, _ in first] == list(range(2, 12))
    assert source.produced < 20_000  # a few buffers, not the whole (endless) file
    assert source.biggest_read <= 1 << 20
    del rows
    assert not source.closed


# --- retorno -------------------------------------------------------------------------------------


def sample_rows() -> list[StatementRow]:
    r = receipt("1", amount=123_456, installments=3)
    rows = rows_like(r, 100)
    return [
        *rows,
        event(rows[0], "200", EventType.CANCELLATION),
        replace(rows[1], record_id="300", sale_time=None),
    ]


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_statement_round_trip_in_both_dialects(delimiter: str) -> None:
    text = io.StringIO()
    write_statement_csv(sample_rows(), text, delimiter=delimiter)
    parsed = statement_of(text.getvalue().encode("cp1252" if delimiter == ";" else "utf-8"))
    assert [r for _, r in parsed] == sample_rows()
    cancel = parsed[3][1]
    assert isinstance(cancel, StatementRow) and cancel.gross_amount_cents < 0


def test_statement_semicolon_sample_with_negative_amounts() -> None:
    data = (
        STATEMENT_HEADER_SC + "\n"
        "R1;55;Cielo;VISA;credit;14/03/2024;23:58:00;ab12;0099;;;2;1;1.000,00;500,00;12,50;487,50;13/04/2024;sale\n"
        "R2;55;cielo;visa;credit;14/03/2024;;AB12;0099;;;2;1;1.000,00;-500,00;-12,50;-487,50;16/03/2024;cancellation\n"
    ).encode()
    (_, sale), (_, cancel) = statement_of(data)
    assert isinstance(sale, StatementRow) and isinstance(cancel, StatementRow)
    assert sale.sale_time == time(23, 58)
    assert sale.sale_date == date(2024, 3, 14)
    assert (sale.sale_amount_cents, sale.gross_amount_cents, sale.net_amount_cents) == (
        100_000,
        50_000,
        48_750,
    )
    assert (sale.acquirer, sale.brand, sale.authorization_code) == ("cielo", "visa", "AB12")
    assert cancel.sale_time is None and cancel.net_amount_cents == -48_750
    assert cancel.event_type is EventType.CANCELLATION


def test_statement_bad_rows_name_their_column() -> None:
    data = (
        STATEMENT_HEADER_SC + "\n"
        "R1;55;cielo;visa;credit;14/03/2024;;1;1;;;2;3;10,00;5,00;0,00;5,00;13/04/2024;sale\n"
        "R2;55;cielo;visa;credit;14/03/2024;25:00:00;1;1;;;1;1;10,00;10,00;0,00;10,00;13/04/2024;sale\n"
        "R3;55;cielo;visa;credit;14/03/2024;;1;1;;;1;1;0,00;10,00;0,00;10,00;13/04/2024;sale\n"
        "R4;55;cielo;visa;credit;14/03/2024;;1;1;;;1;1;10,00;10,00;0,00;10,00;13/04/2024;refund\n"
        "R5;55;cielo;visa;credit;14/03/2024;;1;1;;;1;1;10,00;10,00;0,00;10,00;13/04/2024;sale\n"
    ).encode()
    parsed = statement_of(data)
    reasons = [r.reason for _, r in parsed if isinstance(r, RowError)]
    assert len(reasons) == 4
    assert "installment_number" in reasons[0]
    assert "sale_time" in reasons[1]
    assert "sale_amount" in reasons[2]
    assert "event_type" in reasons[3] and "refund" in reasons[3]
    assert isinstance(parsed[-1][1], StatementRow)


def test_statement_missing_column_is_a_format_error() -> None:
    header = STATEMENT_HEADER_SC.replace(";event_type", "")
    with pytest.raises(FormatError, match="event_type"):
        read_statement(io.BytesIO((header + "\n").encode()))


# --- writers -------------------------------------------------------------------------------------


def test_remessa_has_the_erp_columns_in_the_comma_dialect_and_reads_back() -> None:
    text = io.StringIO()
    corrected = replace(sample_receipts()[0], corrected_on=date(2024, 3, 15))
    write_remessa([corrected], text)
    header, line = text.getvalue().splitlines()
    assert header.split(",") == [*RECEIPT_COLUMNS, *RECEIPT_OPTIONAL_COLUMNS]
    assert "2024-03-14T10:00:00" in line and "1234.56" in line
    [(_, back)] = receipts_of(text.getvalue().encode())
    assert back == replace(corrected, corrected_on=None)


def test_result_csv_lists_every_record_with_joined_fields() -> None:
    r = receipt("1", brand="visa", nsu="111")
    rows = rows_like(r, 100, installments=2, brand="elo", nsu="999")
    lost = receipt("2", nsu="5", auth="5", amount=1)
    result = reconcile([r, lost], rows, as_of=date(2024, 3, 15))
    text = io.StringIO()
    assert write_result_csv(result.rows(), text) == 4
    table = list(csv.DictReader(io.StringIO(text.getvalue())))
    assert list(table[0].keys()) == ["kind", "id", "status", "divergences", "counterpart_ids", "rule"]
    by_id = {(t["kind"], t["id"]): t for t in table}
    sale = by_id[(Kind.SALE.value, "1")]
    assert sale["status"] == "divergent"
    assert sale["divergences"] == "|".join(
        [Divergence.INSTALLMENTS.value, Divergence.BRAND.value, Divergence.NSU.value]
    )
    assert sale["counterpart_ids"] == "100|101"
    assert sale["rule"]
    assert by_id[("statement", "101")]["counterpart_ids"] == "1"
    assert by_id[("sale", "2")] == {
        "kind": "sale",
        "id": "2",
        "status": "pending",
        "divergences": "",
        "counterpart_ids": "",
        "rule": "",
    }


def test_sale_datetime_keeps_an_explicit_offset() -> None:
    data = (RECEIPT_HEADER + "\nV1,1,2024-03-14T13:00:00Z,1.00,debit,elo,rede,1,1,1,sale\n").encode()
    [(_, r)] = receipts_of(data)
    assert isinstance(r, Receipt)
    assert r.sale_datetime == datetime(2024, 3, 14, 10, 0, tzinfo=TZ)
